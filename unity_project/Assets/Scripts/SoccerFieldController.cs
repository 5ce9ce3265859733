// One SoccerTwos field: steps the game once per Academy step, hands out rewards through two
// SimpleMultiAgentGroups, ends and resets episodes, and moves the scene's transforms
// (spec: docs/soccer_spec.md; pattern: ML-Agents' Examples/Soccer/Scripts/SoccerEnvController.cs).
//
// Timing: the Academy steps in FixedUpdate (request decisions -> collect observations -> decide ->
// OnActionReceived). This component runs its FixedUpdate after that (DefaultExecutionOrder 100) and
// applies the four stored actions, so one Academy step = one environment step, as in the Python game.

using Unity.MLAgents;
using UnityEngine;

namespace Marl.Soccer
{
    /// <summary>
    /// Owns the <see cref="SoccerSimulation"/> of one field and its two agent groups.
    /// Group ids: with one field in the scene, team 0's group is created first and gets id 1, team 1's
    /// gets id 2 (ML-Agents numbers groups from 1 in creation order; more fields get 3, 4, ...).
    /// </summary>
    [DefaultExecutionOrder(100)]
    public class SoccerFieldController : MonoBehaviour
    {
        /// <summary>The four players, indexed by agent id (0, 1 team 0; 2, 3 team 1).</summary>
        public SoccerPlayerAgent[] Players = new SoccerPlayerAgent[SoccerSpec.NumPlayers];

        /// <summary>The ball's transform (visual only; the ball's state lives in Simulation).</summary>
        public Transform Ball;

        /// <summary>Random seed for episode starts; negative = seed from the clock.</summary>
        public int Seed = -1;

        /// <summary>Height (m) at which players and ball are drawn above the field plane.</summary>
        public float DrawHeight = 0.02f;

        /// <summary>The game state; read by the agents' CollectObservations.</summary>
        public SoccerSimulation Simulation { get; private set; }

        /// <summary>Current value of the ball_touch environment parameter (read at every episode start).</summary>
        public float BallTouch { get; private set; }

        SimpleMultiAgentGroup[] m_Groups;
        readonly int[][] m_Actions = new int[SoccerSpec.NumPlayers][];

        void Awake()
        {
            Simulation = new SoccerSimulation(Seed);
            for (var k = 0; k < SoccerSpec.NumPlayers; k++)
            {
                m_Actions[k] = new int[SoccerSpec.BranchSizes.Length];
            }
        }

        void Start()
        {
            if (Players == null || Players.Length != SoccerSpec.NumPlayers)
            {
                throw new UnityAgentsException($"{name} (SoccerFieldController): Players must hold exactly {SoccerSpec.NumPlayers} agents");
            }
            // Team 0 first so that, with one field, its group id is 1 and team 1's is 2.
            m_Groups = new[] { new SimpleMultiAgentGroup(), new SimpleMultiAgentGroup() };
            for (var k = 0; k < SoccerSpec.NumPlayers; k++)
            {
                var player = Players[k];
                if (player == null || player.AgentId != k)
                {
                    throw new UnityAgentsException($"{name} (SoccerFieldController): Players[{k}] must be the agent with AgentId {k}");
                }
                m_Groups[player.Team].RegisterAgent(player);
            }
            Academy.Instance.OnEnvironmentReset += ResetEpisode;
            ResetEpisode();
        }

        void OnDestroy()
        {
            if (Academy.IsInitialized)
            {
                Academy.Instance.OnEnvironmentReset -= ResetEpisode;
            }
            if (m_Groups != null)
            {
                foreach (var group in m_Groups)
                {
                    group.Dispose();
                }
            }
        }

        void FixedUpdate()
        {
            if (m_Groups == null)
            {
                return;
            }
            for (var k = 0; k < SoccerSpec.NumPlayers; k++)
            {
                System.Array.Copy(Players[k].LastAction, m_Actions[k], m_Actions[k].Length);
            }
            var result = Simulation.Step(m_Actions);

            // Individual reward: 0.2 * ball_touch for every player that kicked or touched the ball.
            for (var k = 0; k < SoccerSpec.NumPlayers; k++)
            {
                if (result.Touched(k))
                {
                    Players[k].AddReward(SoccerSpec.BallTouchRewardScale * BallTouch);
                }
            }

            if (result.ScoringTeam >= 0)
            {
                // Scoring team: 1 - step / max_steps (float division); conceding team: -1; then both end.
                var scoring = result.ScoringTeam;
                m_Groups[scoring].AddGroupReward(1f - (float)Simulation.StepCount / SoccerSpec.MaxSteps);
                m_Groups[1 - scoring].AddGroupReward(-1f);
                m_Groups[0].EndGroupEpisode();
                m_Groups[1].EndGroupEpisode();
                ResetEpisode();
            }
            else if (Simulation.StepCount >= SoccerSpec.MaxSteps)
            {
                // Truncation: max_step_reached = true for every agent.
                m_Groups[0].GroupEpisodeInterrupted();
                m_Groups[1].GroupEpisodeInterrupted();
                ResetEpisode();
            }
            SyncTransforms();
        }

        /// <summary>Start a new episode on this field and re-read the ball_touch parameter.</summary>
        public void ResetEpisode()
        {
            BallTouch = Academy.Instance.EnvironmentParameters.GetWithDefault(
                SoccerSpec.BallTouchParameter, SoccerSpec.BallTouchDefault);
            Simulation.Reset();
            for (var k = 0; k < SoccerSpec.NumPlayers; k++)
            {
                System.Array.Clear(m_Actions[k], 0, m_Actions[k].Length);
                System.Array.Clear(Players[k].LastAction, 0, Players[k].LastAction.Length);
            }
            SyncTransforms();
        }

        /// <summary>Field (x, y) -> local position (x, DrawHeight, y) under this transform.</summary>
        Vector3 ToLocal(Vector2 fieldPosition)
        {
            return new Vector3(fieldPosition.x, DrawHeight, fieldPosition.y);
        }

        void SyncTransforms()
        {
            for (var k = 0; k < SoccerSpec.NumPlayers; k++)
            {
                Players[k].transform.localPosition = ToLocal(Simulation.PlayerPosition[k]);
            }
            if (Ball != null)
            {
                Ball.localPosition = ToLocal(Simulation.BallPosition);
            }
        }
    }
}

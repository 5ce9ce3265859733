// One SoccerTwos player (spec: docs/soccer_spec.md).
//
// Observations, in Unity's sensor order (sorted by name): a stacked ray-perception sensor
// "StackingSensor_size3_RayPerceptionSensor" (SoccerRaySensorComponent, 3 x 64 floats) -- or, for the
// camera behavior "SoccerTwosCamera", a "CameraSensor" [3, 24, 40] (SoccerCameraSensorComponent) --
// then the vector sensor "VectorSensor_size16" of SoccerSpec.ObservationSize = 16 floats, in the
// agent's own frame (team 1 negates x and y so every agent attacks +x), listed in CollectObservations.
// Actions: discrete branches SoccerSpec.BranchSizes = [3, 3, 3] (forward/back, lateral, kick), own frame.
// Rewards, episode ends and resets are handled by SoccerFieldController through SimpleMultiAgentGroup;
// this component never ends an episode on its own (MaxStep = 0).

using Unity.MLAgents;
using Unity.MLAgents.Actuators;
using Unity.MLAgents.Policies;
using Unity.MLAgents.Sensors;
using UnityEngine;

namespace Marl.Soccer
{
    /// <summary>
    /// A SoccerTwos player. Needs a BehaviorParameters (added automatically by Agent) with behavior name
    /// "SoccerTwos" ("SoccerTwosCamera" with UseCamera), TeamId equal to this player's team,
    /// VectorObservationSize 16 and a discrete action spec [3, 3, 3], a SoccerRaySensorComponent (or a
    /// SoccerCameraSensorComponent with UseCamera) and a DecisionRequester with DecisionPeriod 1;
    /// SoccerSceneBuilder sets all of them.
    /// </summary>
    public class SoccerPlayerAgent : Agent
    {
        /// <summary>Agent id 0..3 (0, 1 = team 0 "blue"; 2, 3 = team 1 "purple"), as in the Python game's
        /// agent names "SoccerTwos?team=T?agent_id=K".</summary>
        [Tooltip("Agent id 0..3: 0 and 1 are team 0 (blue), 2 and 3 are team 1 (purple).")]
        public int AgentId;

        /// <summary>The field this player plays on.</summary>
        public SoccerFieldController Field;

        /// <summary>True for a player of the camera behavior (SoccerSpec.CameraBehaviorName): camera + vector
        /// sensors instead of rays + vector. Set by SoccerSceneBuilder.</summary>
        public bool UseCamera;

        /// <summary>The last discrete action {forward/back, lateral, kick}, each in {0, 1, 2}.</summary>
        public readonly int[] LastAction = new int[3];

        /// <summary>Team of this player (0 or 1), from <see cref="AgentId"/>.</summary>
        public int Team
        {
            get { return SoccerSpec.TeamOf(AgentId); }
        }

        /// <summary>This player's index in its team's SimpleMultiAgentGroup (registration order = agent id
        /// order): 0 or 1. BrainImporter gives it <c>&lt;Behavior&gt;_agent&lt;i&gt;.onnx</c> with
        /// i = team index * PlayersPerTeam + IndexInGroup when per-slot brains exist.</summary>
        public int IndexInGroup
        {
            get { return AgentId % SoccerSpec.PlayersPerTeam; }
        }

        /// <summary>The behavior name this player must have: SoccerSpec.CameraBehaviorName with a camera, else SoccerSpec.BehaviorName.</summary>
        public string ExpectedBehaviorName
        {
            get { return UseCamera ? SoccerSpec.CameraBehaviorName : SoccerSpec.BehaviorName; }
        }

        /// <inheritdoc />
        public override void Initialize()
        {
            var behavior = GetComponent<BehaviorParameters>();
            var problem = CheckBehaviorParameters(behavior);
            if (problem != null)
            {
                throw new UnityAgentsException($"{name} (SoccerPlayerAgent, agent id {AgentId}): {problem}");
            }
            if (Field == null)
            {
                throw new UnityAgentsException($"{name} (SoccerPlayerAgent): the Field reference is not set");
            }
            // The field controller ends episodes for the whole group (goal or SoccerSpec.MaxSteps).
            MaxStep = 0;
        }

        /// <summary>
        /// Check a BehaviorParameters against the spec; returns null when it matches, otherwise a
        /// one-line description of the first mismatch.
        /// </summary>
        public string CheckBehaviorParameters(BehaviorParameters behavior)
        {
            if (behavior == null)
            {
                return "no BehaviorParameters component";
            }
            if (behavior.BehaviorName != ExpectedBehaviorName)
            {
                return $"behavior name is '{behavior.BehaviorName}', expected '{ExpectedBehaviorName}'";
            }
            var hasRays = GetComponent<SoccerRaySensorComponent>() != null;
            var hasCamera = GetComponent<SoccerCameraSensorComponent>() != null;
            if (hasRays == UseCamera || hasCamera != UseCamera)
            {
                return UseCamera ? "a camera player needs a SoccerCameraSensorComponent and no SoccerRaySensorComponent"
                    : "a player needs a SoccerRaySensorComponent and no SoccerCameraSensorComponent";
            }
            if (behavior.TeamId != Team)
            {
                return $"TeamId is {behavior.TeamId}, expected {Team} for agent id {AgentId}";
            }
            var brain = behavior.BrainParameters;
            if (brain.VectorObservationSize != SoccerSpec.ObservationSize || brain.NumStackedVectorObservations != 1)
            {
                return $"vector observation size is {brain.VectorObservationSize} x {brain.NumStackedVectorObservations} stacked, " +
                    $"expected {SoccerSpec.ObservationSize} x 1";
            }
            var spec = brain.ActionSpec;
            var branches = spec.BranchSizes;
            var sameBranches = branches != null && branches.Length == SoccerSpec.BranchSizes.Length;
            for (var i = 0; sameBranches && i < branches.Length; i++)
            {
                sameBranches = branches[i] == SoccerSpec.BranchSizes[i];
            }
            if (spec.NumContinuousActions != 0 || !sameBranches)
            {
                return "action spec must be discrete branches [3, 3, 3] with no continuous actions";
            }
            return null;
        }

        /// <summary>
        /// The 16 observations, own frame (s = +1 for team 0, -1 for team 1; every vector is multiplied
        /// by s; velocities are also multiplied by SoccerSpec.VelocityScale = 1 / 0.05):
        ///  [0, 1]   self position x, y
        ///  [2, 3]   self velocity x, y (scaled)
        ///  [4, 5]   ball position relative to self x, y
        ///  [6, 7]   ball velocity x, y (scaled)
        ///  [8, 9]   teammate position relative to self x, y
        ///  [10, 11] opponent A (the lower agent id) position relative to self x, y
        ///  [12, 13] opponent B (the higher agent id) position relative to self x, y
        ///  [14, 15] opponent goal centre relative to self x, y (the goal this agent attacks)
        /// </summary>
        public override void CollectObservations(VectorSensor sensor)
        {
            var sim = Field.Simulation;
            var s = SoccerSpec.FrameSign(Team);
            var self = sim.PlayerPosition[AgentId];
            var teammateId = Team * SoccerSpec.PlayersPerTeam + (1 - AgentId % SoccerSpec.PlayersPerTeam);
            var opponentA = (1 - Team) * SoccerSpec.PlayersPerTeam;  // opponents ordered by agent id
            var opponentB = opponentA + 1;
            var opponentGoal = new Vector2(s * SoccerSpec.HalfLength, 0f);  // team 0 attacks x = +1, team 1 x = -1

            var selfPosition = s * self;
            var selfVelocity = s * SoccerSpec.VelocityScale * sim.PlayerVelocity[AgentId];
            var ballRelative = s * (sim.BallPosition - self);
            var ballVelocity = s * SoccerSpec.VelocityScale * sim.BallVelocity;
            var teammateRelative = s * (sim.PlayerPosition[teammateId] - self);
            var opponentARelative = s * (sim.PlayerPosition[opponentA] - self);
            var opponentBRelative = s * (sim.PlayerPosition[opponentB] - self);
            var goalRelative = s * (opponentGoal - self);

            sensor.AddObservation(selfPosition.x);       // [0]  self position x
            sensor.AddObservation(selfPosition.y);       // [1]  self position y
            sensor.AddObservation(selfVelocity.x);       // [2]  self velocity x / 0.05
            sensor.AddObservation(selfVelocity.y);       // [3]  self velocity y / 0.05
            sensor.AddObservation(ballRelative.x);       // [4]  ball - self, x
            sensor.AddObservation(ballRelative.y);       // [5]  ball - self, y
            sensor.AddObservation(ballVelocity.x);       // [6]  ball velocity x / 0.05
            sensor.AddObservation(ballVelocity.y);       // [7]  ball velocity y / 0.05
            sensor.AddObservation(teammateRelative.x);   // [8]  teammate - self, x
            sensor.AddObservation(teammateRelative.y);   // [9]  teammate - self, y
            sensor.AddObservation(opponentARelative.x);  // [10] opponent A - self, x
            sensor.AddObservation(opponentARelative.y);  // [11] opponent A - self, y
            sensor.AddObservation(opponentBRelative.x);  // [12] opponent B - self, x
            sensor.AddObservation(opponentBRelative.y);  // [13] opponent B - self, y
            sensor.AddObservation(goalRelative.x);       // [14] opponent goal centre - self, x
            sensor.AddObservation(goalRelative.y);       // [15] opponent goal centre - self, y
        }

        /// <summary>
        /// Store the action; SoccerFieldController applies all four players' actions together in its
        /// next FixedUpdate. Branch 0: 0 none, 1 toward +x, 2 toward -x; branch 1: 0 none, 1 toward +y,
        /// 2 toward -y; branch 2: 0 none, 1 soft kick, 2 hard kick (own frame).
        /// </summary>
        public override void OnActionReceived(ActionBuffers actions)
        {
            var discrete = actions.DiscreteActions;
            for (var i = 0; i < LastAction.Length; i++)
            {
                LastAction[i] = Mathf.Clamp(discrete[i], 0, 2);
            }
        }

        /// <summary>
        /// Keyboard control (Behavior Type "Heuristic Only"), in the agent's own frame:
        /// D / A = toward / away from the opponent goal, W / S = +y / -y, Space = soft kick,
        /// Left Shift = hard kick. Uses the legacy Input Manager; with only the new Input System
        /// enabled the agent stands still.
        /// </summary>
        public override void Heuristic(in ActionBuffers actionsOut)
        {
            var discrete = actionsOut.DiscreteActions;
            discrete[0] = 0;
            discrete[1] = 0;
            discrete[2] = 0;
#if ENABLE_LEGACY_INPUT_MANAGER
            if (Input.GetKey(KeyCode.D)) discrete[0] = 1;
            if (Input.GetKey(KeyCode.A)) discrete[0] = 2;
            if (Input.GetKey(KeyCode.W)) discrete[1] = 1;
            if (Input.GetKey(KeyCode.S)) discrete[1] = 2;
            if (Input.GetKey(KeyCode.Space)) discrete[2] = 1;
            if (Input.GetKey(KeyCode.LeftShift)) discrete[2] = 2;
#endif
        }

        /// <summary>Clear the stored action at the start of each episode.</summary>
        public override void OnEpisodeBegin()
        {
            for (var i = 0; i < LastAction.Length; i++)
            {
                LastAction[i] = 0;
            }
        }
    }
}

// The SoccerTwos game rules as a plain, deterministic 2-D step function (no PhysX), so the Unity game
// and the Python game envs/games/soccer.py follow the same rules step for step
// (spec: docs/soccer_spec.md). SoccerFieldController owns one instance, feeds it the agents'
// actions once per environment step and copies the state onto the scene's transforms.
//
// The rules are the same, in the same order, as envs/games/soccer.py (SoccerTwosEnv._physics and
// _goal). Order of one step (Step):
//   1. players, in agent-id order: direction = the action's own-frame axes (each -1, 0 or +1) mapped to
//      the world frame and normalised to length 1 (diagonals are not faster); velocity = damping *
//      velocity + acceleration * direction; speed clipped to PlayerMaxSpeed; position += velocity;
//      then walls: a coordinate outside [-1 + r, 1 - r] x [-0.6 + r, 0.6 - r] is clamped to the boundary
//      and that velocity component set to 0.
//   2. ball contacts: every player's offset to the ball is measured once (after all players moved);
//      then, in agent-id order, a player whose centre is closer than KickRange to the ball's centre
//      and kicks (1 or 2) sets the ball velocity to SoftKickSpeed / HardKickSpeed along player -> ball;
//      one that does not kick but overlaps the ball (distance < PlayerRadius + BallRadius) adds
//      PushFactor * its velocity to the ball velocity and puts the ball just outside itself. Either
//      counts as a touch (ball_touch reward).
//   3. ball: position += velocity, then velocity *= BallDamping; past a side wall (|y| > 0.6 - r) the
//      ball is clamped onto it and its y velocity multiplied by -WallRestitution; past an end wall
//      (|x| > 1 - r) outside the goal mouth (|y| >= GoalHalfWidth) the same for x.
//   4. goal: |y| < GoalHalfWidth and x >= +1 -> team 0 scores; x <= -1 -> team 1 scores.

using UnityEngine;

namespace Marl.Soccer
{
    /// <summary>What happened during one <see cref="SoccerSimulation.Step"/>.</summary>
    public struct SoccerStepResult
    {
        /// <summary>Team that scored this step (0 or 1), or -1 when nobody scored.</summary>
        public int ScoringTeam;

        /// <summary>Bit k is set when agent k kicked or touched the ball this step.</summary>
        public int TouchMask;

        /// <summary>True when agent <paramref name="agentId"/> kicked or touched the ball this step.</summary>
        public bool Touched(int agentId)
        {
            return (TouchMask & (1 << agentId)) != 0;
        }
    }

    /// <summary>
    /// State and rules of one SoccerTwos field. Positions are world-frame field coordinates in metres
    /// (x = long axis, y = Unity z); velocities are metres per environment step. Agent ids 0..3
    /// (0, 1 = team 0; 2, 3 = team 1).
    /// </summary>
    public sealed class SoccerSimulation
    {
        /// <summary>Player centres, world frame, indexed by agent id (length 4).</summary>
        public readonly Vector2[] PlayerPosition = new Vector2[SoccerSpec.NumPlayers];

        /// <summary>Player velocities (m per step), world frame, indexed by agent id (length 4).</summary>
        public readonly Vector2[] PlayerVelocity = new Vector2[SoccerSpec.NumPlayers];

        /// <summary>Ball centre, world frame.</summary>
        public Vector2 BallPosition;

        /// <summary>Ball velocity (m per step), world frame.</summary>
        public Vector2 BallVelocity;

        /// <summary>Environment steps taken in the current episode (0 right after Reset).</summary>
        public int StepCount;

        readonly System.Random m_Random;
        readonly Vector2[] m_Offset = new Vector2[SoccerSpec.NumPlayers];

        /// <summary>Create a field; <paramref name="seed"/> &lt; 0 seeds from the clock.</summary>
        public SoccerSimulation(int seed)
        {
            m_Random = seed < 0 ? new System.Random() : new System.Random(seed);
            Reset();
        }

        float Uniform(float low, float high)
        {
            return low + (float)m_Random.NextDouble() * (high - low);
        }

        /// <summary>
        /// Start a new episode: team 0 at (-0.5, +0.2) and (-0.5, -0.2) (agents 0 and 1), team 1 at
        /// (+0.5, +0.2) and (+0.5, -0.2) (agents 2 and 3); ball at (0, U(-0.1, 0.1)); every start
        /// position (players and ball) jittered by U(-0.05, 0.05) in x and y; velocities 0; StepCount 0.
        /// </summary>
        public void Reset()
        {
            for (var k = 0; k < SoccerSpec.NumPlayers; k++)
            {
                var team = SoccerSpec.TeamOf(k);
                var x = team == 0 ? -SoccerSpec.StartX : SoccerSpec.StartX;
                var y = k % SoccerSpec.PlayersPerTeam == 0 ? SoccerSpec.StartY : -SoccerSpec.StartY;
                PlayerPosition[k] = new Vector2(
                    x + Uniform(-SoccerSpec.StartJitter, SoccerSpec.StartJitter),
                    y + Uniform(-SoccerSpec.StartJitter, SoccerSpec.StartJitter));
                PlayerVelocity[k] = Vector2.zero;
            }
            var ballX = Uniform(-SoccerSpec.StartJitter, SoccerSpec.StartJitter);
            var ballY = Uniform(-SoccerSpec.BallStartYRange, SoccerSpec.BallStartYRange)
                + Uniform(-SoccerSpec.StartJitter, SoccerSpec.StartJitter);
            BallPosition = new Vector2(ballX, ballY);
            BallVelocity = Vector2.zero;
            StepCount = 0;
        }

        /// <summary>Map a branch value (0 none, 1 positive, 2 negative) to -1, 0 or +1.</summary>
        static float AxisValue(int branchValue)
        {
            switch (branchValue)
            {
                case 1:
                    return 1f;
                case 2:
                    return -1f;
                default:
                    return 0f;
            }
        }

        /// <summary>
        /// Advance one environment step.
        /// </summary>
        /// <param name="actions">actions[k] = {forward/back, lateral, kick} of agent k, each in {0, 1, 2},
        /// in agent k's own frame (length 4, each of length 3).</param>
        /// <returns>Who scored (if anyone) and which agents touched the ball.</returns>
        public SoccerStepResult Step(int[][] actions)
        {
            StepCount += 1;
            var result = new SoccerStepResult { ScoringTeam = -1, TouchMask = 0 };

            // 1. players
            var xLimit = SoccerSpec.HalfLength - SoccerSpec.PlayerRadius;
            var yLimit = SoccerSpec.HalfWidth - SoccerSpec.PlayerRadius;
            for (var k = 0; k < SoccerSpec.NumPlayers; k++)
            {
                var sign = SoccerSpec.FrameSign(SoccerSpec.TeamOf(k));
                var direction = new Vector2(sign * AxisValue(actions[k][0]), sign * AxisValue(actions[k][1]));
                if (direction.sqrMagnitude > 0f)
                {
                    direction.Normalize();
                }
                var v = SoccerSpec.PlayerDamping * PlayerVelocity[k] + SoccerSpec.PlayerAcceleration * direction;
                var speed = v.magnitude;
                if (speed > SoccerSpec.PlayerMaxSpeed)
                {
                    v *= SoccerSpec.PlayerMaxSpeed / speed;
                }
                var p = PlayerPosition[k] + v;
                if (p.x > xLimit) { p.x = xLimit; v.x = 0f; }
                if (p.x < -xLimit) { p.x = -xLimit; v.x = 0f; }
                if (p.y > yLimit) { p.y = yLimit; v.y = 0f; }
                if (p.y < -yLimit) { p.y = -yLimit; v.y = 0f; }
                PlayerPosition[k] = p;
                PlayerVelocity[k] = v;
            }

            // 2. ball contacts (kick or push); offsets measured once, before any contact moves the ball
            for (var k = 0; k < SoccerSpec.NumPlayers; k++)
            {
                m_Offset[k] = BallPosition - PlayerPosition[k];
            }
            for (var k = 0; k < SoccerSpec.NumPlayers; k++)
            {
                var distance = m_Offset[k].magnitude;
                if (distance >= SoccerSpec.KickRange)
                {
                    continue;
                }
                var along = m_Offset[k] / Mathf.Max(distance, 1e-6f);
                var kick = actions[k][2];
                if (kick != 0)
                {
                    BallVelocity = (kick == 1 ? SoccerSpec.SoftKickSpeed : SoccerSpec.HardKickSpeed) * along;
                    result.TouchMask |= 1 << k;
                }
                else if (distance < SoccerSpec.PlayerRadius + SoccerSpec.BallRadius)
                {
                    BallVelocity += SoccerSpec.PushFactor * PlayerVelocity[k];
                    BallPosition = PlayerPosition[k] + along * (SoccerSpec.PlayerRadius + SoccerSpec.BallRadius);
                    result.TouchMask |= 1 << k;
                }
            }

            // 3. ball flight and walls
            BallPosition += BallVelocity;
            BallVelocity *= SoccerSpec.BallDamping;
            var ballYLimit = SoccerSpec.HalfWidth - SoccerSpec.BallRadius;
            if (Mathf.Abs(BallPosition.y) > ballYLimit)
            {
                BallPosition.y = Mathf.Sign(BallPosition.y) * ballYLimit;
                BallVelocity.y = -SoccerSpec.WallRestitution * BallVelocity.y;
            }
            var ballXLimit = SoccerSpec.HalfLength - SoccerSpec.BallRadius;
            if (Mathf.Abs(BallPosition.x) > ballXLimit && Mathf.Abs(BallPosition.y) >= SoccerSpec.GoalHalfWidth)
            {
                BallPosition.x = Mathf.Sign(BallPosition.x) * ballXLimit;
                BallVelocity.x = -SoccerSpec.WallRestitution * BallVelocity.x;
            }

            // 4. goals: the ball's centre on or past a goal line inside the goal mouth
            if (Mathf.Abs(BallPosition.y) < SoccerSpec.GoalHalfWidth)
            {
                if (BallPosition.x >= SoccerSpec.HalfLength)
                {
                    result.ScoringTeam = 0; // team 0 attacks x = +1
                }
                else if (BallPosition.x <= -SoccerSpec.HalfLength)
                {
                    result.ScoringTeam = 1; // team 1 attacks x = -1
                }
            }
            return result;
        }
    }
}

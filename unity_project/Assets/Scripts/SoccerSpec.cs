// The SoccerTwos game's constants, in one place.
//
// Source of truth: docs/soccer_spec.md (shared with the Python game envs/games/soccer.py and the
// stand-in player). Every number here must equal the spec; tests/test_unity_project.py reads
// ObservationSize, BranchSizes and MaxSteps from this file (with a C# parser) and compares them with
// the Python game's observation and action spaces.
//
// Units: field coordinates are metres in Unity (world units in Python). The field's long axis is x
// (goal lines at x = -1 and x = +1); the spec's y axis is Unity's z axis (the field lies on the XZ
// plane). Speeds and accelerations are per environment step (one step = one Academy step, decision
// period 1), not per second.

namespace Marl.Soccer
{
    /// <summary>
    /// Constants of the SoccerTwos game (two teams of two). All values come from docs/soccer_spec.md.
    /// </summary>
    public static class SoccerSpec
    {
        /// <summary>Behavior name; Python sees "SoccerTwos?team=0" and "SoccerTwos?team=1".</summary>
        public const string BehaviorName = "SoccerTwos";

        /// <summary>Number of teams (team 0 "blue" defends x = -1, team 1 "purple" defends x = +1).</summary>
        public const int NumTeams = 2;

        /// <summary>Players per team.</summary>
        public const int PlayersPerTeam = 2;

        /// <summary>Players in total; agent ids 0, 1 are team 0 and 2, 3 are team 1.</summary>
        public const int NumPlayers = NumTeams * PlayersPerTeam;

        /// <summary>Length of the vector sensor's observation (float32 values), see SoccerPlayerAgent.CollectObservations.</summary>
        public const int ObservationSize = 16;

        /// <summary>
        /// Discrete action branches: [0] forward/back (0 none, 1 toward +x, 2 toward -x),
        /// [1] lateral (0 none, 1 toward +y, 2 toward -y), [2] kick (0 none, 1 soft, 2 hard).
        /// All in the agent's own frame. No action masking.
        /// </summary>
        public static readonly int[] BranchSizes = { 3, 3, 3 };

        /// <summary>Environment steps per episode; reaching it interrupts both groups (truncation).</summary>
        public const int MaxSteps = 400;

        /// <summary>One decision per environment step.</summary>
        public const int DecisionPeriod = 1;

        // ---- field (metres) ----
        /// <summary>Goal lines are at x = -HalfLength and x = +HalfLength.</summary>
        public const float HalfLength = 1.0f;
        /// <summary>Side walls are at y = -HalfWidth and y = +HalfWidth.</summary>
        public const float HalfWidth = 0.6f;
        /// <summary>A goal mouth is |y| &lt; GoalHalfWidth on a goal line.</summary>
        public const float GoalHalfWidth = 0.2f;
        /// <summary>Ball restitution against walls (fraction of the normal velocity kept).</summary>
        public const float WallRestitution = 0.8f;

        // ---- players ----
        /// <summary>Player disc radius (m).</summary>
        public const float PlayerRadius = 0.05f;
        /// <summary>Maximum player speed (m per step).</summary>
        public const float PlayerMaxSpeed = 0.05f;
        /// <summary>Player acceleration per step along the (normalised) pressed direction (m per step per step).</summary>
        public const float PlayerAcceleration = 0.02f;
        /// <summary>Player velocity multiplier applied every step.</summary>
        public const float PlayerDamping = 0.8f;

        // ---- ball ----
        /// <summary>Ball disc radius (m).</summary>
        public const float BallRadius = 0.03f;
        /// <summary>Ball velocity multiplier applied every step.</summary>
        public const float BallDamping = 0.96f;
        /// <summary>A kick works when the player's centre is closer than this to the ball's centre (m).</summary>
        public const float KickRange = 0.09f;
        /// <summary>Ball speed after a soft kick (kick branch = 1), m per step.</summary>
        public const float SoftKickSpeed = 0.06f;
        /// <summary>Ball speed after a hard kick (kick branch = 2), m per step.</summary>
        public const float HardKickSpeed = 0.12f;
        /// <summary>On contact without a kick the ball's velocity gains this times the player's velocity.</summary>
        public const float PushFactor = 0.5f;

        // ---- observations ----
        /// <summary>Velocities in observations are multiplied by this (1 / 0.05) so they lie in about [-1, 1].</summary>
        public const float VelocityScale = 1.0f / 0.05f;

        // ---- episode start ----
        /// <summary>|x| of every player's start position (team 0 at -StartX, team 1 at +StartX).</summary>
        public const float StartX = 0.5f;
        /// <summary>|y| of the start positions: the two players of a team start at y = +StartY and y = -StartY.</summary>
        public const float StartY = 0.2f;
        /// <summary>The ball starts at (0, U(-BallStartYRange, BallStartYRange)).</summary>
        public const float BallStartYRange = 0.1f;
        /// <summary>Every start position (players and ball) gets U(-StartJitter, StartJitter) added to x and to y.</summary>
        public const float StartJitter = 0.05f;

        // ---- rewards ----
        /// <summary>Environment parameter (EnvironmentParameters side channel / YAML environment_parameters).</summary>
        public const string BallTouchParameter = "ball_touch";
        /// <summary>Default of the ball_touch parameter.</summary>
        public const float BallTouchDefault = 0.0f;
        /// <summary>Individual reward per step with a kick or touch is BallTouchRewardScale * ball_touch.</summary>
        public const float BallTouchRewardScale = 0.2f;

        // ---- sensors (Unity sorts an agent's sensors by name: obs_0, obs_1, ... follow that order) ----
        /// <summary>Name of the vector sensor Unity creates for VectorObservationSize = 16.</summary>
        public const string VectorSensorName = "VectorSensor_size16";

        /// <summary>Name of the ray sensor before stacking; the StackingSensor around it is
        /// "StackingSensor_size3_RayPerceptionSensor" (sorts before the vector sensor).</summary>
        public const string RaySensorName = "RayPerceptionSensor";

        /// <summary>Tags a ray can detect, in one-hot order.</summary>
        public static readonly string[] RayTags = { "ball", "ownGoal", "opponentGoal", "wall", "teammate", "opponent" };

        /// <summary>Ray directions in degrees in the agent's own frame (0 = toward the goal it attacks,
        /// +90 = own +y), in ML-Agents' order: forward, then pairs alternating left and right.</summary>
        public static readonly float[] RayAngles = { 0f, 45f, -45f, 90f, -90f, 135f, -135f, 180f };

        /// <summary>Ray length (m); a hit reports its distance divided by this.</summary>
        public const float RayLength = 1.5f;

        /// <summary>Decisions stacked by the StackingSensor around the ray sensor (oldest first).</summary>
        public const int RayStacks = 3;

        /// <summary>Floats of one ray frame: per ray, one-hot of the tag hit, 1 if nothing was hit, hit fraction.</summary>
        public const int RayFrameSize = 8 * (6 + 2);

        /// <summary>Behavior of team 1 in the camera variant of the scene (SoccerSceneBuilder -cameraTeam1).</summary>
        public const string CameraBehaviorName = "SoccerTwosCamera";

        /// <summary>Name of the camera sensor (sorts before the vector sensor).</summary>
        public const string CameraSensorName = "CameraSensor";

        /// <summary>Camera sensor size: 3 channels (own team, opponents, ball), CameraHeight x CameraWidth pixels.</summary>
        public const int CameraChannels = 3;
        /// <summary>Rows of the camera image (row 0 = own +y).</summary>
        public const int CameraHeight = 24;
        /// <summary>Columns of the camera image (column 0 = own -x).</summary>
        public const int CameraWidth = 40;

        /// <summary>Team of an agent id: 0 for ids 0, 1 and 1 for ids 2, 3.</summary>
        public static int TeamOf(int agentId)
        {
            return agentId < PlayersPerTeam ? 0 : 1;
        }

        /// <summary>
        /// Sign that maps world coordinates to a team's own frame and back: +1 for team 0, -1 for team 1
        /// (team 1 negates both x and y so that every agent attacks +x).
        /// </summary>
        public static float FrameSign(int team)
        {
            return team == 0 ? 1f : -1f;
        }
    }
}

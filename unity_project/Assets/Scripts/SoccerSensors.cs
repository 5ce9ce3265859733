// The SoccerTwos sensors besides the vector sensor (spec: docs/soccer_spec.md, "Observations"):
//
//   * SoccerRaySensor ("RayPerceptionSensor"): 8 rays in the agent's own frame over the game state
//     (SoccerSimulation, not PhysX), laid out as ML-Agents' RayPerceptionSensor: per ray a one-hot of
//     the tag hit (SoccerSpec.RayTags), 1 if nothing was hit within SoccerSpec.RayLength, and the hit
//     distance divided by the ray length. SoccerRaySensorComponent wraps it in ML-Agents'
//     StackingSensor (SoccerSpec.RayStacks decisions, oldest first), named
//     "StackingSensor_size3_RayPerceptionSensor", exactly what envs/games/soccer.py (rays=True) and
//     the stand-in player send.
//   * SoccerCameraSensor ("CameraSensor"): the top-down image of the camera behavior (SoccerTwosCamera,
//     team 1 in the camera variant of the scene): CHW [3, CameraHeight, CameraWidth], channel 0 own
//     team, 1 opponents, 2 ball, one pixel per body, own frame (row 0 = own +y, column 0 = own -x),
//     sent PNG-compressed like ML-Agents' CameraSensor.

using System;
using Unity.MLAgents.Sensors;
using UnityEngine;

namespace Marl.Soccer
{
    /// <summary>The geometry both sensors share: what an agent sees, in its own frame.</summary>
    public static class SoccerVision
    {
        /// <summary>Bodies on the field in world coordinates: index 0 the ball, 1..4 players 0..3.</summary>
        static Vector2 Body(SoccerSimulation sim, int j)
        {
            return j == 0 ? sim.BallPosition : sim.PlayerPosition[j - 1];
        }

        /// <summary>
        /// One ray frame of agent <paramref name="agentId"/> into <paramref name="output"/>
        /// (length SoccerSpec.RayFrameSize), as envs/games/soccer.py ray_frames computes it.
        /// </summary>
        public static void RayFrame(SoccerSimulation sim, int agentId, float[] output)
        {
            var team = SoccerSpec.TeamOf(agentId);
            var s = SoccerSpec.FrameSign(team);
            var origin = s * sim.PlayerPosition[agentId];
            var nTags = SoccerSpec.RayTags.Length;
            Array.Clear(output, 0, output.Length);
            for (var r = 0; r < SoccerSpec.RayAngles.Length; r++)
            {
                var radians = SoccerSpec.RayAngles[r] * Mathf.Deg2Rad;
                var d = new Vector2(Mathf.Cos(radians), Mathf.Sin(radians));
                var bestT = float.PositiveInfinity;
                var bestTag = -1;
                // circles: the ball (tag 0), then every other player (teammate 4, opponent 5)
                for (var j = 0; j <= SoccerSpec.NumPlayers; j++)
                {
                    if (j == agentId + 1)
                    {
                        continue;
                    }
                    var radius = j == 0 ? SoccerSpec.BallRadius : SoccerSpec.PlayerRadius;
                    var tag = j == 0 ? 0 : (SoccerSpec.TeamOf(j - 1) == team ? 4 : 5);
                    var oc = s * Body(sim, j) - origin;
                    var proj = Vector2.Dot(oc, d);
                    var oc2 = Vector2.Dot(oc, oc);
                    var disc = radius * radius - (oc2 - proj * proj);
                    var t = oc2 <= radius * radius ? 0f : proj - Mathf.Sqrt(Mathf.Max(disc, 0f));
                    if (disc >= 0f && t >= 0f && t < bestT)
                    {
                        bestT = t;
                        bestTag = tag;
                    }
                }
                // the boundary, own frame: own goal mouth at x = -1, opponent goal mouth at x = +1
                var tx = d.x > 0f ? (SoccerSpec.HalfLength - origin.x) / d.x
                    : d.x < 0f ? (-SoccerSpec.HalfLength - origin.x) / d.x : float.PositiveInfinity;
                var ty = d.y > 0f ? (SoccerSpec.HalfWidth - origin.y) / d.y
                    : d.y < 0f ? (-SoccerSpec.HalfWidth - origin.y) / d.y : float.PositiveInfinity;
                var tb = Mathf.Min(tx, ty);
                var yb = origin.y + tb * d.y;
                var boundaryTag = tx <= ty && Mathf.Abs(yb) < SoccerSpec.GoalHalfWidth ? (d.x > 0f ? 2 : 1) : 3;
                if (tb < bestT)
                {
                    bestT = tb;
                    bestTag = boundaryTag;
                }
                var offset = r * (nTags + 2);
                var within = bestT <= SoccerSpec.RayLength;
                if (within)
                {
                    output[offset + bestTag] = 1f;
                }
                output[offset + nTags] = within ? 0f : 1f;
                output[offset + nTags + 1] = within ? bestT / SoccerSpec.RayLength : 1f;
            }
        }

        /// <summary>Pixel (row, column) of a world position in agent-frame sign <paramref name="s"/>.</summary>
        public static Vector2Int Pixel(Vector2 world, float s)
        {
            var x = s * world.x;
            var y = s * world.y;
            var col = Mathf.Clamp((int)((x + SoccerSpec.HalfLength) / (2f * SoccerSpec.HalfLength) * SoccerSpec.CameraWidth),
                0, SoccerSpec.CameraWidth - 1);
            var row = Mathf.Clamp((int)((SoccerSpec.HalfWidth - y) / (2f * SoccerSpec.HalfWidth) * SoccerSpec.CameraHeight),
                0, SoccerSpec.CameraHeight - 1);
            return new Vector2Int(row, col);
        }
    }

    /// <summary>The ray sensor of one agent (see the file header); stacked by <see cref="SoccerRaySensorComponent"/>.</summary>
    public class SoccerRaySensor : ISensor
    {
        readonly SoccerPlayerAgent m_Agent;
        readonly float[] m_Frame = new float[SoccerSpec.RayFrameSize];

        /// <summary>A ray sensor for <paramref name="agent"/> (reads its field's simulation).</summary>
        public SoccerRaySensor(SoccerPlayerAgent agent)
        {
            m_Agent = agent;
        }

        /// <inheritdoc />
        public ObservationSpec GetObservationSpec()
        {
            return ObservationSpec.Vector(SoccerSpec.RayFrameSize);
        }

        /// <inheritdoc />
        public int Write(ObservationWriter writer)
        {
            SoccerVision.RayFrame(m_Agent.Field.Simulation, m_Agent.AgentId, m_Frame);
            writer.AddList(m_Frame);
            return m_Frame.Length;
        }

        /// <inheritdoc />
        public byte[] GetCompressedObservation()
        {
            return null;
        }

        /// <inheritdoc />
        public void Update() { }

        /// <inheritdoc />
        public void Reset() { }

        /// <inheritdoc />
        public CompressionSpec GetCompressionSpec()
        {
            return CompressionSpec.Default();
        }

        /// <inheritdoc />
        public string GetName()
        {
            return SoccerSpec.RaySensorName;
        }
    }

    /// <summary>Adds the stacked ray sensor to a SoccerPlayerAgent (SoccerSceneBuilder puts it on every SoccerTwos player).</summary>
    public class SoccerRaySensorComponent : SensorComponent
    {
        /// <inheritdoc />
        public override ISensor[] CreateSensors()
        {
            var agent = GetComponent<SoccerPlayerAgent>();
            return new ISensor[] { new StackingSensor(new SoccerRaySensor(agent), SoccerSpec.RayStacks) };
        }
    }

    /// <summary>The top-down camera of one agent (see the file header), PNG-compressed.</summary>
    public class SoccerCameraSensor : ISensor
    {
        readonly SoccerPlayerAgent m_Agent;
        Texture2D m_Texture;

        /// <summary>A camera for <paramref name="agent"/> (reads its field's simulation).</summary>
        public SoccerCameraSensor(SoccerPlayerAgent agent)
        {
            m_Agent = agent;
        }

        /// <inheritdoc />
        public ObservationSpec GetObservationSpec()
        {
            return ObservationSpec.Visual(SoccerSpec.CameraChannels, SoccerSpec.CameraHeight, SoccerSpec.CameraWidth);
        }

        float[,,] Render()
        {
            var sim = m_Agent.Field.Simulation;
            var team = m_Agent.Team;
            var s = SoccerSpec.FrameSign(team);
            var image = new float[SoccerSpec.CameraChannels, SoccerSpec.CameraHeight, SoccerSpec.CameraWidth];
            for (var k = 0; k < SoccerSpec.NumPlayers; k++)
            {
                var p = SoccerVision.Pixel(sim.PlayerPosition[k], s);
                image[SoccerSpec.TeamOf(k) == team ? 0 : 1, p.x, p.y] = 1f;
            }
            var b = SoccerVision.Pixel(sim.BallPosition, s);
            image[2, b.x, b.y] = 1f;
            return image;
        }

        /// <inheritdoc />
        public int Write(ObservationWriter writer)
        {
            var image = Render();
            var n = 0;
            for (var c = 0; c < SoccerSpec.CameraChannels; c++)
            {
                for (var h = 0; h < SoccerSpec.CameraHeight; h++)
                {
                    for (var w = 0; w < SoccerSpec.CameraWidth; w++)
                    {
                        writer[c, h, w] = image[c, h, w];
                        n++;
                    }
                }
            }
            return n;
        }

        /// <inheritdoc />
        public byte[] GetCompressedObservation()
        {
            var image = Render();
            if (m_Texture == null)
            {
                m_Texture = new Texture2D(SoccerSpec.CameraWidth, SoccerSpec.CameraHeight, TextureFormat.RGB24, false);
            }
            for (var h = 0; h < SoccerSpec.CameraHeight; h++)
            {
                for (var w = 0; w < SoccerSpec.CameraWidth; w++)
                {
                    // texture row 0 is the bottom; the PNG's (and the trainer's) row 0 is the top
                    m_Texture.SetPixel(w, SoccerSpec.CameraHeight - 1 - h, new Color(image[0, h, w], image[1, h, w], image[2, h, w]));
                }
            }
            m_Texture.Apply();
            return m_Texture.EncodeToPNG();
        }

        /// <inheritdoc />
        public void Update() { }

        /// <inheritdoc />
        public void Reset() { }

        /// <inheritdoc />
        public CompressionSpec GetCompressionSpec()
        {
            return new CompressionSpec(SensorCompressionType.PNG);
        }

        /// <inheritdoc />
        public string GetName()
        {
            return SoccerSpec.CameraSensorName;
        }
    }

    /// <summary>Adds the camera sensor to a SoccerPlayerAgent of the camera behavior.</summary>
    public class SoccerCameraSensorComponent : SensorComponent
    {
        /// <inheritdoc />
        public override ISensor[] CreateSensors()
        {
            return new ISensor[] { new SoccerCameraSensor(GetComponent<SoccerPlayerAgent>()) };
        }
    }
}

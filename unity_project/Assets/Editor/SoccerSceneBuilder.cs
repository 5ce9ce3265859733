// Builds the SoccerTwos scene in code (a hand-written .unity YAML file would have to hard-code script
// GUIDs and fileIDs; building it here keeps it correct for whatever GUIDs this checkout gets).
// What the scene contains is described in unity_project/SCENE.md.
//
// Menu:          MARL > Create SoccerTwos Scene
//                MARL > Create SoccerTwos Scene (camera team 1)
// Command line:  Unity -batchmode -nographics -quit -projectPath unity_project
//                      -executeMethod Marl.SoccerEditor.SoccerSceneBuilder.BuildFromCommandLine
//                      [-scenePath Assets/Scenes/SoccerTwos.unity] [-cameraTeam1 true]
//
// Sensors per player (docs/soccer_spec.md): SoccerRaySensorComponent (stacked rays) and the vector
// sensor; in the camera variant team 1 is behavior "SoccerTwosCamera" with SoccerCameraSensorComponent
// and the vector sensor.

using System;
using System.IO;
using System.Linq;
using Marl.Soccer;
using Unity.MLAgents;
using Unity.MLAgents.Actuators;
using Unity.MLAgents.Policies;
using UnityEditor;
using UnityEditor.SceneManagement;
using UnityEngine;

namespace Marl.SoccerEditor
{
    /// <summary>Creates Assets/Scenes/SoccerTwos.unity: one field, a ball and four SoccerPlayerAgents.</summary>
    public static class SoccerSceneBuilder
    {
        const string MaterialsFolder = "Assets/Materials";

        /// <summary>Menu entry: build and save the scene, then leave it open.</summary>
        [MenuItem("MARL/Create SoccerTwos Scene")]
        public static void BuildMenu()
        {
            if (!EditorSceneManager.SaveCurrentModifiedScenesIfUserWantsTo())
            {
                return;
            }
            var path = Build(BrainImporter.DefaultScenePath);
            Debug.Log($"MARL: created {path}");
        }

        /// <summary>Menu entry: the camera variant (team 1 = behavior SoccerTwosCamera with a camera sensor).</summary>
        [MenuItem("MARL/Create SoccerTwos Scene (camera team 1)")]
        public static void BuildCameraMenu()
        {
            if (!EditorSceneManager.SaveCurrentModifiedScenesIfUserWantsTo())
            {
                return;
            }
            var path = Build(BrainImporter.DefaultScenePath, true);
            Debug.Log($"MARL: created {path} (camera team 1)");
        }

        /// <summary>-executeMethod entry: build and save -scenePath (default Assets/Scenes/SoccerTwos.unity); exit 0 / 1.</summary>
        public static void BuildFromCommandLine()
        {
            try
            {
                var camera = CommandLine.Value("-cameraTeam1", "false") == "true";
                var path = Build(CommandLine.Value("-scenePath", BrainImporter.DefaultScenePath), camera);
                CommandLine.Finish(true, $"MARL: created {path}");
            }
            catch (Exception e) when (e is ArgumentException || e is IOException || e is InvalidOperationException)
            {
                CommandLine.Finish(false, "MARL scene: " + e.Message);
            }
        }

        /// <summary>
        /// Create the scene, save it to <paramref name="scenePath"/> and add it (first, enabled) to Build Settings.
        /// </summary>
        /// <param name="scenePath">Where to save the scene.</param>
        /// <param name="cameraTeam1">Team 1 plays as behavior SoccerTwosCamera with a camera sensor.</param>
        /// <returns>The saved scene path.</returns>
        /// <exception cref="InvalidOperationException">The scene could not be saved.</exception>
        public static string Build(string scenePath, bool cameraTeam1 = false)
        {
            var scene = EditorSceneManager.NewScene(NewSceneSetup.EmptyScene, NewSceneMode.Single);

            var cameraObject = new GameObject("Main Camera");
            cameraObject.tag = "MainCamera";
            var camera = cameraObject.AddComponent<Camera>();
            camera.orthographic = true;
            camera.orthographicSize = 0.75f;
            camera.clearFlags = CameraClearFlags.SolidColor;
            camera.backgroundColor = new Color(0.12f, 0.12f, 0.12f);
            cameraObject.transform.SetPositionAndRotation(new Vector3(0f, 3f, 0f), Quaternion.Euler(90f, 0f, 0f));

            var lightObject = new GameObject("Directional Light");
            var light = lightObject.AddComponent<Light>();
            light.type = LightType.Directional;
            lightObject.transform.rotation = Quaternion.Euler(50f, -30f, 0f);

            var fieldObject = new GameObject("SoccerField");
            var field = fieldObject.AddComponent<SoccerFieldController>();

            var grass = MakeMaterial("Grass", new Color(0.2f, 0.55f, 0.25f));
            var wallMaterial = MakeMaterial("Wall", new Color(0.85f, 0.85f, 0.85f));
            var ballMaterial = MakeMaterial("Ball", Color.white);
            var teamMaterials = new[] { MakeMaterial("Blue", new Color(0.15f, 0.35f, 0.9f)), MakeMaterial("Purple", new Color(0.55f, 0.2f, 0.75f)) };

            // Field surface 2 m x 1.2 m on the XZ plane (spec x -> Unity x, spec y -> Unity z).
            Box(fieldObject.transform, "Ground", new Vector3(0f, -0.01f, 0f),
                new Vector3(2f * SoccerSpec.HalfLength, 0.02f, 2f * SoccerSpec.HalfWidth), grass);
            // Side walls, and end walls on both sides of each goal mouth (drawn only; rules are in SoccerSimulation).
            var wallHeight = 0.05f;
            var wallThickness = 0.02f;
            foreach (var side in new[] { -1f, 1f })
            {
                Box(fieldObject.transform, side < 0 ? "WallSouth" : "WallNorth",
                    new Vector3(0f, wallHeight / 2f, side * (SoccerSpec.HalfWidth + wallThickness / 2f)),
                    new Vector3(2f * SoccerSpec.HalfLength + 2f * wallThickness, wallHeight, wallThickness), wallMaterial);
                var endLength = SoccerSpec.HalfWidth - SoccerSpec.GoalHalfWidth;
                foreach (var half in new[] { -1f, 1f })
                {
                    Box(fieldObject.transform, $"EndWall{(side < 0 ? "West" : "East")}{(half < 0 ? "S" : "N")}",
                        new Vector3(side * (SoccerSpec.HalfLength + wallThickness / 2f), wallHeight / 2f,
                            half * (SoccerSpec.GoalHalfWidth + endLength / 2f)),
                        new Vector3(wallThickness, wallHeight, endLength), wallMaterial);
                }
                // Goal mouth marker: team 0 defends x = -1 (blue), team 1 defends x = +1 (purple).
                Box(fieldObject.transform, side < 0 ? "GoalBlue" : "GoalPurple",
                    new Vector3(side * (SoccerSpec.HalfLength + 0.05f), 0f, 0f),
                    new Vector3(0.1f, 0.01f, 2f * SoccerSpec.GoalHalfWidth), teamMaterials[side < 0 ? 0 : 1]);
            }

            var ball = GameObject.CreatePrimitive(PrimitiveType.Sphere);
            ball.name = "Ball";
            UnityEngine.Object.DestroyImmediate(ball.GetComponent<Collider>());
            ball.transform.SetParent(fieldObject.transform, false);
            ball.transform.localScale = Vector3.one * (2f * SoccerSpec.BallRadius);
            ball.GetComponent<Renderer>().sharedMaterial = ballMaterial;
            field.Ball = ball.transform;

            var players = new SoccerPlayerAgent[SoccerSpec.NumPlayers];
            for (var k = 0; k < SoccerSpec.NumPlayers; k++)
            {
                var team = SoccerSpec.TeamOf(k);
                var player = GameObject.CreatePrimitive(PrimitiveType.Cylinder);
                player.name = $"{(team == 0 ? "Blue" : "Purple")}Player{k}";
                UnityEngine.Object.DestroyImmediate(player.GetComponent<Collider>());
                player.transform.SetParent(fieldObject.transform, false);
                player.transform.localScale = new Vector3(2f * SoccerSpec.PlayerRadius, 0.02f, 2f * SoccerSpec.PlayerRadius);
                player.GetComponent<Renderer>().sharedMaterial = teamMaterials[team];

                // Agent has [RequireComponent(typeof(BehaviorParameters))], so this adds both.
                var agent = player.AddComponent<SoccerPlayerAgent>();
                agent.AgentId = k;
                agent.Field = field;
                agent.MaxStep = 0;
                agent.UseCamera = cameraTeam1 && team == 1;
                ConfigureBehavior(player.GetComponent<BehaviorParameters>(), team, agent.UseCamera);
                if (agent.UseCamera)
                {
                    player.AddComponent<SoccerCameraSensorComponent>();
                }
                else
                {
                    player.AddComponent<SoccerRaySensorComponent>();
                }

                var requester = player.AddComponent<DecisionRequester>();
                requester.DecisionPeriod = SoccerSpec.DecisionPeriod;
                requester.TakeActionsBetweenDecisions = false;
                players[k] = agent;
            }
            field.Players = players;

            var directory = Path.GetDirectoryName(scenePath);
            if (!string.IsNullOrEmpty(directory))
            {
                Directory.CreateDirectory(directory);
            }
            if (!EditorSceneManager.SaveScene(scene, scenePath))
            {
                throw new InvalidOperationException($"could not save scene to '{scenePath}'");
            }
            var others = EditorBuildSettings.scenes.Where(s => s.path != scenePath);
            EditorBuildSettings.scenes = new[] { new EditorBuildSettingsScene(scenePath, true) }.Concat(others).ToArray();
            return scenePath;
        }

        /// <summary>Behavior "SoccerTwos" ("SoccerTwosCamera" with <paramref name="camera"/>), the given team,
        /// 16 vector observations (the ray or camera sensor comes from its SensorComponent), discrete [3, 3, 3], no model yet.</summary>
        public static void ConfigureBehavior(BehaviorParameters behavior, int team, bool camera = false)
        {
            behavior.BehaviorName = camera ? SoccerSpec.CameraBehaviorName : SoccerSpec.BehaviorName;
            behavior.TeamId = team;
            behavior.BehaviorType = BehaviorType.Default;
            behavior.UseChildSensors = true;
            behavior.BrainParameters.VectorObservationSize = SoccerSpec.ObservationSize;
            behavior.BrainParameters.NumStackedVectorObservations = 1;
            behavior.BrainParameters.ActionSpec = ActionSpec.MakeDiscrete(SoccerSpec.BranchSizes);
        }

        static GameObject Box(Transform parent, string name, Vector3 localPosition, Vector3 size, Material material)
        {
            var box = GameObject.CreatePrimitive(PrimitiveType.Cube);
            box.name = name;
            UnityEngine.Object.DestroyImmediate(box.GetComponent<Collider>());
            box.transform.SetParent(parent, false);
            box.transform.localPosition = localPosition;
            box.transform.localScale = size;
            box.GetComponent<Renderer>().sharedMaterial = material;
            return box;
        }

        /// <summary>Load or create Assets/Materials/&lt;name&gt;.mat with the given colour.</summary>
        static Material MakeMaterial(string name, Color color)
        {
            var path = $"{MaterialsFolder}/{name}.mat";
            var material = AssetDatabase.LoadAssetAtPath<Material>(path);
            if (material != null)
            {
                return material;
            }
            if (!AssetDatabase.IsValidFolder(MaterialsFolder))
            {
                AssetDatabase.CreateFolder("Assets", "Materials");
            }
            var shader = Shader.Find("Universal Render Pipeline/Lit") ?? Shader.Find("Standard");
            material = new Material(shader) { color = color };
            AssetDatabase.CreateAsset(material, path);
            return material;
        }
    }
}

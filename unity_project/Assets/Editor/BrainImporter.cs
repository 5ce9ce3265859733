// Assign exported brains (.onnx) to the agents of the open scene.
//
// Menu:          MARL > Assign Brains From Folder...
// Command line:  Unity -batchmode -nographics -quit -projectPath unity_project
//                      -executeMethod Marl.SoccerEditor.BrainImporter.AssignFromCommandLine
//                      -brainsDir <folder with .onnx files> [-scenePath Assets/Scenes/SoccerTwos.unity]
//
// Matching: every BehaviorParameters in the open scene(s) takes the first file that exists in the
// folder among
//     <BehaviorName>_agent<slot>.onnx     (per-slot brains, written when the policy was trained WITH the
//                                          agent-id input, network_settings.agent_id: true; slot >= 1,
//                                          slot = index of the agent's team among the behavior's team ids
//                                          (sorted) * PlayersPerTeam + the agent's index in its group,
//                                          i.e. the slot it trained in with one training area; slot 0's
//                                          brain is <BehaviorName>.onnx)
//     <BehaviorName>?team=<TeamId>.onnx   (a brain for one team; '?' is not allowed on Windows, so also)
//     <BehaviorName>_team<TeamId>.onnx    (the same, Windows-safe)
//     <BehaviorName>.onnx                 (one brain for every team; what marl-learn writes as
//                                          results/<run-id>/<BehaviorName>.onnx)
// Files outside the project are first copied into Assets/Brains/ (the folder `marl-export --to-unity`
// fills), with '?' replaced by '_' in the file name, then imported by Sentis as ModelAssets.

using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Unity.MLAgents.Policies;
using Unity.Sentis;
using UnityEditor;
using UnityEditor.SceneManagement;
using UnityEngine;

namespace Marl.SoccerEditor
{
    /// <summary>Raised for a bad brains folder, a file that does not import as a model, or a scene problem.</summary>
    public class BrainImportException : Exception
    {
        /// <summary>Create with a one-line message naming the file or folder and what was expected.</summary>
        public BrainImportException(string message) : base(message) { }
    }

    /// <summary>Finds <c>&lt;BehaviorName&gt;.onnx</c> files and puts them on the matching agents' Behavior Parameters.</summary>
    public static class BrainImporter
    {
        /// <summary>Project folder that holds imported brains (also the target of marl-export --to-unity).</summary>
        public const string BrainsFolder = "Assets/Brains";

        /// <summary>Scene opened by <see cref="AssignFromCommandLine"/> when -scenePath is not given.</summary>
        public const string DefaultScenePath = "Assets/Scenes/SoccerTwos.unity";

        /// <summary>Menu entry: pick a folder, assign its brains to the open scene's agents, report in a dialog.</summary>
        [MenuItem("MARL/Assign Brains From Folder...")]
        public static void AssignFromFolderMenu()
        {
            var folder = EditorUtility.OpenFolderPanel("Folder with <BehaviorName>.onnx brains", BrainsFolder, "");
            if (string.IsNullOrEmpty(folder))
            {
                return;
            }
            try
            {
                var assigned = AssignBrains(folder);
                EditorUtility.DisplayDialog("MARL brains", Summary(assigned), "OK");
            }
            catch (BrainImportException e)
            {
                EditorUtility.DisplayDialog("MARL brains", e.Message, "OK");
            }
        }

        /// <summary>
        /// -executeMethod entry: opens -scenePath (default Assets/Scenes/SoccerTwos.unity), assigns the
        /// brains found in -brainsDir (required), saves the scene. Exit code 0 when at least one agent
        /// got a brain, 1 otherwise (missing flag, no matching file, import failure).
        /// </summary>
        public static void AssignFromCommandLine()
        {
            try
            {
                var folder = CommandLine.Value("-brainsDir", null);
                if (folder == null)
                {
                    throw new BrainImportException("command line: -brainsDir <folder with .onnx files> is required");
                }
                var scenePath = CommandLine.Value("-scenePath", DefaultScenePath);
                if (!File.Exists(scenePath))
                {
                    throw new BrainImportException($"-scenePath '{scenePath}': no such scene (build it with MARL > Create SoccerTwos Scene)");
                }
                EditorSceneManager.OpenScene(scenePath, OpenSceneMode.Single);
                var assigned = AssignBrains(folder);
                if (!EditorSceneManager.SaveOpenScenes())
                {
                    throw new BrainImportException($"could not save scene '{scenePath}'");
                }
                CommandLine.Finish(true, Summary(assigned));
            }
            catch (Exception e) when (e is BrainImportException || e is ArgumentException || e is IOException)
            {
                CommandLine.Finish(false, "MARL brains: " + e.Message);
            }
        }

        /// <summary>
        /// Assign brains from <paramref name="folder"/> to every BehaviorParameters in the open scenes
        /// and mark the scenes dirty (the caller saves).
        /// </summary>
        /// <param name="folder">Absolute or project-relative folder holding .onnx files.</param>
        /// <returns>One line per assigned agent: "GameObject (Behavior?team=N) &lt;- Assets/Brains/file.onnx".</returns>
        /// <exception cref="BrainImportException">The folder does not exist, a file does not import as a
        /// Sentis ModelAsset, lacks the obs_0 input, or no agent matched any file.</exception>
        public static List<string> AssignBrains(string folder)
        {
            var fullFolder = Path.GetFullPath(folder);
            if (!Directory.Exists(fullFolder))
            {
                throw new BrainImportException($"brains folder '{folder}' does not exist");
            }
            var behaviors = UnityEngine.Object.FindObjectsByType<BehaviorParameters>(FindObjectsInactive.Include, FindObjectsSortMode.None)
                .OrderBy(b => b.gameObject.name, StringComparer.Ordinal)
                .ToArray();
            if (behaviors.Length == 0)
            {
                throw new BrainImportException("the open scene has no Behavior Parameters (open Assets/Scenes/SoccerTwos.unity first)");
            }

            var imported = new Dictionary<string, ModelAsset>(StringComparer.Ordinal);
            var assigned = new List<string>();
            var unmatched = new List<string>();
            foreach (var behavior in behaviors)
            {
                var slot = SlotOf(behavior, behaviors);
                var file = FindBrainFile(fullFolder, behavior.BehaviorName, behavior.TeamId, slot);
                if (slot > 0 && file != null && !file.EndsWith($"_agent{slot}.onnx", StringComparison.Ordinal)
                    && File.Exists(Path.Combine(fullFolder, $"{behavior.BehaviorName}_agent1.onnx")))
                {
                    Debug.LogWarning($"MARL brains: '{folder}' has per-slot brains but no {behavior.BehaviorName}_agent{slot}.onnx " +
                        $"for {behavior.gameObject.name}; it gets {Path.GetFileName(file)}, which acts as another slot");
                }
                if (file == null)
                {
                    unmatched.Add($"{behavior.gameObject.name} ({behavior.FullyQualifiedBehaviorName})");
                    continue;
                }
                if (!imported.TryGetValue(file, out var model))
                {
                    model = ImportModel(file);
                    imported[file] = model;
                }
                Undo.RecordObject(behavior, "Assign brain");
                behavior.Model = model;
                EditorUtility.SetDirty(behavior);
                PrefabUtility.RecordPrefabInstancePropertyModifications(behavior);
                EditorSceneManager.MarkSceneDirty(behavior.gameObject.scene);
                assigned.Add($"{behavior.gameObject.name} ({behavior.FullyQualifiedBehaviorName}) <- {AssetDatabase.GetAssetPath(model)}");
            }
            if (assigned.Count == 0)
            {
                throw new BrainImportException(
                    $"no brain in '{folder}' matches the scene's behaviors; expected files named like " +
                    $"'{behaviors[0].BehaviorName}.onnx' or '{behaviors[0].BehaviorName}?team={behaviors[0].TeamId}.onnx'");
            }
            foreach (var line in unmatched)
            {
                Debug.LogWarning($"MARL brains: no .onnx in '{folder}' for {line}; its model is unchanged");
            }
            return assigned;
        }

        /// <summary>
        /// The training slot of an agent for per-slot brains: index of its TeamId among the sorted team ids
        /// of <paramref name="all"/> agents with its behavior name, times SoccerSpec.PlayersPerTeam, plus its
        /// index in its group (<see cref="Marl.Soccer.SoccerPlayerAgent.IndexInGroup"/>); -1 for agents that
        /// do not say their index in a group.
        /// </summary>
        public static int SlotOf(BehaviorParameters behavior, IEnumerable<BehaviorParameters> all)
        {
            var player = behavior.GetComponent<Marl.Soccer.SoccerPlayerAgent>();
            if (player == null)
            {
                return -1;
            }
            var teams = all.Where(b => b.BehaviorName == behavior.BehaviorName).Select(b => b.TeamId).Distinct()
                .OrderBy(t => t).ToList();
            return teams.IndexOf(behavior.TeamId) * Marl.Soccer.SoccerSpec.PlayersPerTeam + player.IndexInGroup;
        }

        /// <summary>The brain file for one behavior, team and slot (-1: none), following the matching order above; null if none.</summary>
        public static string FindBrainFile(string folder, string behaviorName, int teamId, int slot = -1)
        {
            var candidates = new List<string>();
            if (slot > 0)
            {
                candidates.Add($"{behaviorName}_agent{slot}.onnx");
            }
            candidates.Add($"{behaviorName}?team={teamId}.onnx");
            candidates.Add($"{behaviorName}_team{teamId}.onnx");
            candidates.Add($"{behaviorName}.onnx");
            foreach (var candidate in candidates)
            {
                string path;
                try
                {
                    path = Path.Combine(folder, candidate);
                }
                catch (ArgumentException)
                {
                    continue; // '?' is not a valid path character on this platform
                }
                if (File.Exists(path))
                {
                    return Path.GetFullPath(path);
                }
            }
            return null;
        }

        /// <summary>
        /// Import one .onnx as a Sentis ModelAsset. Files outside Assets/ are copied into Assets/Brains/
        /// first (copied to a hidden temporary file in that folder, then moved into place).
        /// </summary>
        /// <exception cref="BrainImportException">Not importable as a ModelAsset, or no "obs_0" input (not an ML-Agents brain).</exception>
        public static ModelAsset ImportModel(string file)
        {
            var assetPath = ToAssetPath(file);
            if (assetPath == null)
            {
                Directory.CreateDirectory(BrainsFolder);
                var targetName = Path.GetFileName(file).Replace('?', '_');
                assetPath = BrainsFolder + "/" + targetName;
                // Same folder (so the move is atomic), hidden name (so Unity does not import it).
                var temporary = BrainsFolder + "/." + targetName + "." + Guid.NewGuid().ToString("N") + ".tmp";
                File.Copy(file, temporary);
                if (File.Exists(assetPath))
                {
                    File.Replace(temporary, assetPath, null);
                }
                else
                {
                    File.Move(temporary, assetPath);
                }
            }
            AssetDatabase.ImportAsset(assetPath, ImportAssetOptions.ForceUpdate);
            var model = AssetDatabase.LoadAssetAtPath<ModelAsset>(assetPath);
            if (model == null)
            {
                throw new BrainImportException($"'{assetPath}' did not import as a Sentis ModelAsset (is it a valid ONNX file? is com.unity.sentis installed?)");
            }
            var inputs = ModelLoader.Load(model).inputs.Select(input => input.name).ToList();
            if (!inputs.Contains("obs_0"))
            {
                throw new BrainImportException($"'{assetPath}' has inputs [{string.Join(", ", inputs)}], expected an ML-Agents brain with 'obs_0'");
            }
            return model;
        }

        /// <summary>"Assets/..." for a file inside this project's Assets folder, otherwise null.</summary>
        static string ToAssetPath(string file)
        {
            var assetsRoot = Path.GetFullPath(Application.dataPath) + Path.DirectorySeparatorChar;
            var full = Path.GetFullPath(file);
            if (!full.StartsWith(assetsRoot, StringComparison.Ordinal))
            {
                return null;
            }
            return "Assets/" + full.Substring(assetsRoot.Length).Replace(Path.DirectorySeparatorChar, '/');
        }

        static string Summary(List<string> assigned)
        {
            return $"MARL brains: assigned {assigned.Count} agent(s):\n" + string.Join("\n", assigned);
        }
    }
}

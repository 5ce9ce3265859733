// Headless Linux build for cloud training (a Dedicated Server player: no window, no GPU needed).
//
// Menu:          MARL > Build Linux Server (headless)
// Command line:  Unity -batchmode -nographics -quit -projectPath unity_project
//                      -executeMethod Marl.SoccerEditor.HeadlessBuild.BuildLinuxServer
//                      [-buildPath Builds/LinuxServer/SoccerTwos.x86_64] [-scenePath Assets/Scenes/SoccerTwos.unity]
// Needs the "Linux Dedicated Server Build Support" module of the Unity Editor install.
// Exit code 0 on success, 1 on any failure (missing module, missing scene, build errors).

using System;
using System.IO;
using System.Linq;
using UnityEditor;
using UnityEditor.Build.Reporting;
using UnityEngine;

namespace Marl.SoccerEditor
{
    /// <summary>Builds the SoccerTwos scene as a Linux x86_64 Dedicated Server player.</summary>
    public static class HeadlessBuild
    {
        /// <summary>Output used when -buildPath is not given (relative to the project folder).</summary>
        public const string DefaultBuildPath = "Builds/LinuxServer/SoccerTwos.x86_64";

        /// <summary>Menu entry: build to <see cref="DefaultBuildPath"/> and report in a dialog.</summary>
        [MenuItem("MARL/Build Linux Server (headless)")]
        public static void BuildMenu()
        {
            var (success, message) = Build(DefaultBuildPath, null);
            EditorUtility.DisplayDialog("MARL headless build", message, "OK");
            if (success)
            {
                EditorUtility.RevealInFinder(DefaultBuildPath);
            }
        }

        /// <summary>
        /// -executeMethod entry: builds to -buildPath (default <see cref="DefaultBuildPath"/>) from
        /// -scenePath (default: the enabled scenes of Build Settings, else Assets/Scenes/SoccerTwos.unity).
        /// Quits with exit code 0 on success, 1 on failure.
        /// </summary>
        public static void BuildLinuxServer()
        {
            try
            {
                var buildPath = CommandLine.Value("-buildPath", DefaultBuildPath);
                var scenePath = CommandLine.Value("-scenePath", null);
                var (success, message) = Build(buildPath, scenePath);
                CommandLine.Finish(success, message);
            }
            catch (ArgumentException e)
            {
                CommandLine.Finish(false, "MARL headless build: " + e.Message);
            }
        }

        /// <summary>
        /// Build a Linux x86_64 server player.
        /// </summary>
        /// <param name="buildPath">Executable path, e.g. Builds/LinuxServer/SoccerTwos.x86_64.</param>
        /// <param name="scenePath">One scene to build, or null for the enabled Build Settings scenes
        /// (falling back to Assets/Scenes/SoccerTwos.unity).</param>
        /// <returns>(true, summary) on success; (false, one-line reason) on failure.</returns>
        public static (bool success, string message) Build(string buildPath, string scenePath)
        {
            if (!BuildPipeline.IsBuildTargetSupported(BuildTargetGroup.Standalone, BuildTarget.StandaloneLinux64))
            {
                return (false, "MARL headless build: the Linux build target is not installed (add 'Linux Dedicated Server Build Support' in Unity Hub)");
            }
            string[] scenes;
            if (scenePath != null)
            {
                scenes = new[] { scenePath };
            }
            else
            {
                scenes = EditorBuildSettings.scenes.Where(s => s.enabled).Select(s => s.path).ToArray();
                if (scenes.Length == 0)
                {
                    scenes = new[] { BrainImporter.DefaultScenePath };
                }
            }
            foreach (var scene in scenes)
            {
                if (!File.Exists(scene))
                {
                    return (false, $"MARL headless build: scene '{scene}' does not exist (build it with MARL > Create SoccerTwos Scene)");
                }
            }
            var directory = Path.GetDirectoryName(buildPath);
            if (!string.IsNullOrEmpty(directory))
            {
                Directory.CreateDirectory(directory);
            }

            EditorUserBuildSettings.standaloneBuildSubtarget = StandaloneBuildSubtarget.Server;
            var options = new BuildPlayerOptions
            {
                scenes = scenes,
                locationPathName = buildPath,
                target = BuildTarget.StandaloneLinux64,
                targetGroup = BuildTargetGroup.Standalone,
                subtarget = (int)StandaloneBuildSubtarget.Server,
                options = BuildOptions.None,
            };
            var report = BuildPipeline.BuildPlayer(options);
            var summary = report.summary;
            if (summary.result != BuildResult.Succeeded)
            {
                return (false, $"MARL headless build: {summary.result} with {summary.totalErrors} error(s); see the Editor log");
            }
            return (true, $"MARL headless build: {buildPath} ({summary.totalSize} bytes, scenes: {string.Join(", ", scenes)})");
        }
    }
}

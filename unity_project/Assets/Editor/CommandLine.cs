// Command-line helpers shared by the -executeMethod entry points (BrainImporter, HeadlessBuild,
// SoccerSceneBuilder).

using System;
using UnityEditor;
using UnityEngine;

namespace Marl.SoccerEditor
{
    /// <summary>Reads "-name value" pairs from the Unity command line and ends batch runs with an exit code.</summary>
    public static class CommandLine
    {
        /// <summary>
        /// The value after <paramref name="flag"/> (e.g. "-brainsDir"), or <paramref name="fallback"/>
        /// when the flag is absent.
        /// </summary>
        /// <exception cref="ArgumentException">The flag is the last argument or is followed by another flag.</exception>
        public static string Value(string flag, string fallback)
        {
            var args = Environment.GetCommandLineArgs();
            for (var i = 0; i < args.Length; i++)
            {
                if (!string.Equals(args[i], flag, StringComparison.Ordinal))
                {
                    continue;
                }
                if (i + 1 >= args.Length || args[i + 1].StartsWith("-", StringComparison.Ordinal))
                {
                    throw new ArgumentException($"command line: {flag} needs a value (e.g. {flag} <path>)");
                }
                return args[i + 1];
            }
            return fallback;
        }

        /// <summary>
        /// Log a one-line result and, in batch mode, quit Unity with exit code 0 (success) or 1 (failure).
        /// Outside batch mode only logs.
        /// </summary>
        public static void Finish(bool success, string message)
        {
            if (success)
            {
                Debug.Log(message);
            }
            else
            {
                Debug.LogError(message);
            }
            if (Application.isBatchMode)
            {
                EditorApplication.Exit(success ? 0 : 1);
            }
        }
    }
}

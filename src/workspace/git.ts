/**
 * Which files of a repository go into a guest: tracked files as they are in
 * the working tree, optionally the untracked files git does not ignore, and
 * the repository's history (`.git`). Ignored files never ship.
 *
 * @module
 */
import { join } from "node:path";
import { CommandError, run } from "../util/exec.ts";

/**
 * Runs git in `dir` with the settings through which a repository's own
 * configuration could make git start other programs turned off: banger
 * reads repositories it did not write, on behalf of agents as well as
 * people. (`core.fsmonitor` names a program git runs to list changes.)
 */
function git(dir: string, args: string[]) {
  return run("git", ["-C", dir, "-c", "core.fsmonitor=false", ...args]);
}

/** A repository that can be copied. */
export interface Repo {
  /** The work tree's top directory. */
  top: string;
  /** Absolute path of the `.git` directory. */
  gitDir: string;
  /** Where the given path sits below `top` ("" for the top itself). */
  relative: string;
}

/** A path the user gave that cannot be used as a workspace. */
export class WorkspaceError extends Error {
  override name = "WorkspaceError";
}

/**
 * Checks that `path` is inside a non-bare git work tree without submodules
 * and whose `.git` is a directory. Requires `--allow-run` for git.
 */
export async function inspectRepo(path: string): Promise<Repo> {
  try {
    const info = await Deno.stat(path);
    if (!info.isDirectory) {
      throw new WorkspaceError(
        `Cannot use "${path}" as a workspace: not a directory`,
      );
    }
  } catch (error) {
    if (error instanceof WorkspaceError) throw error;
    throw new WorkspaceError(
      `Cannot use "${path}" as a workspace: no such directory`,
    );
  }
  const revParse = async (...args: string[]) => {
    try {
      return (await git(path, ["rev-parse", ...args])).stdout;
    } catch (error) {
      if (error instanceof CommandError && error.code !== null) {
        return undefined;
      }
      throw error;
    }
  };
  const bare = await revParse("--is-bare-repository");
  if (bare === undefined) {
    throw new WorkspaceError(
      `Cannot use "${path}" as a workspace: not inside a git repository`,
    );
  }
  const out = bare.trim() === "true" ? undefined : await revParse(
    "--is-inside-work-tree",
    "--show-toplevel",
    "--absolute-git-dir",
    "--show-prefix",
  );
  const [inside, top, gitDir, prefix] = out?.split("\n") ?? [];
  if (inside !== "true" || !top || !gitDir) {
    throw new WorkspaceError(
      `Cannot use "${path}" as a workspace: a bare repository has no work tree`,
    );
  }
  if (gitDir !== join(top, ".git")) {
    throw new WorkspaceError(
      `Cannot use "${path}" as a workspace: linked work trees (a .git file) are not supported`,
    );
  }
  const submodules = await git(top, ["ls-files", "--stage", "-z"]);
  if (
    submodules.stdout.split("\0").some((entry) => entry.startsWith("160000 "))
  ) {
    throw new WorkspaceError(
      `Cannot use "${path}" as a workspace: it has submodules, which are not supported`,
    );
  }
  return { top, gitDir, relative: (prefix ?? "").replace(/\/$/, "") };
}

/** The files to copy, relative to the work tree's top. */
export interface FileList {
  files: string[];
  /** Untracked, not ignored files left out (without --include-untracked). */
  skippedUntracked: number;
}

/**
 * Lists the files that ship: tracked files present in the working tree, and
 * with `includeUntracked` the untracked files that are not ignored.
 */
export async function listWorkspaceFiles(
  repo: Repo,
  includeUntracked: boolean,
): Promise<FileList> {
  const lines = async (args: string[]) =>
    (await git(repo.top, args)).stdout.split("\0").filter((f) => f !== "");
  const tracked = await lines(["ls-files", "-z", "--cached"]);
  // A tracked file deleted in the working tree is not copied: the guest
  // sees the same deletion the host has.
  const deleted = new Set(await lines(["ls-files", "-z", "--deleted"]));
  const untracked = await lines([
    "ls-files",
    "-z",
    "--others",
    "--exclude-standard",
  ]);
  const files = [...new Set(tracked)].filter((f) => !deleted.has(f));
  if (includeUntracked) files.push(...untracked);
  files.sort();
  return {
    files,
    skippedUntracked: includeUntracked ? 0 : untracked.length,
  };
}

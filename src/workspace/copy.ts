/**
 * Copies a workspace into a guest as one tar stream over ssh: the listed
 * files plus the repository's `.git`, so guest `git log` and `git diff`
 * work. Nothing is staged on the host's disk.
 *
 * @module
 */
import { shellJoin } from "../ssh/quote.ts";
import type { FileList, Repo } from "./git.ts";

/** Where workspaces land in the guest. */
export const GUEST_REPO_PATH = "/root/repo";

/**
 * Streams `files` and `.git` from `repo` to `guestPath` through the ssh
 * command `ssh` (argv up to and including the destination).
 *
 * Requires `--allow-run` for tar and ssh. Throws naming the side that
 * failed.
 */
export async function copyWorkspace(
  repo: Repo,
  list: FileList,
  ssh: { program: string; args: string[] },
  guestPath = GUEST_REPO_PATH,
): Promise<void> {
  const tar = new Deno.Command("tar", {
    args: [
      "-c",
      "-f",
      "-",
      "-C",
      repo.top,
      "--null",
      "--no-recursion",
      "-T",
      "-",
      "--recursion",
      ".git",
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const remote = shellJoin([
    "sh",
    "-c",
    'rm -rf "$1" && mkdir -p "$1" && exec tar -x -f - -C "$1" --no-same-owner',
    "sh",
    guestPath,
  ]);
  const receiver = new Deno.Command(ssh.program, {
    args: [...ssh.args, remote],
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();

  const feed = (async () => {
    const writer = tar.stdin.getWriter();
    const encoder = new TextEncoder();
    for (const file of list.files) {
      await writer.write(encoder.encode(file + "\0"));
    }
    await writer.close();
  })();
  const pipe = tar.stdout.pipeTo(receiver.stdin).catch(() => {});
  const [tarStatus, tarErr, sshStatus, sshErr] = await Promise.all([
    tar.status,
    new Response(tar.stderr).text(),
    receiver.status,
    new Response(receiver.stderr).text(),
    feed,
    pipe,
  ]);
  if (!tarStatus.success) {
    throw new Error(
      `Cannot copy workspace "${repo.top}": tar failed: ${tarErr.trim()}`,
    );
  }
  if (!sshStatus.success) {
    throw new Error(
      `Cannot copy workspace into the guest: ${
        sshErr.trim() || `ssh exited with ${sshStatus.code}`
      }`,
    );
  }
}

/**
 * banger's ssh key pair and per-VM host keys.
 *
 * @module
 */
import { dirname } from "node:path";
import { run } from "../util/exec.ts";

/**
 * Creates an ed25519 key pair at `path` (and `path.pub`) unless one exists.
 * Requires `--allow-run` for ssh-keygen.
 */
export async function ensureKeyPair(
  path: string,
  comment: string,
): Promise<void> {
  try {
    await Deno.stat(path);
    return;
  } catch {
    // Missing: generate below.
  }
  await Deno.mkdir(dirname(path), { recursive: true, mode: 0o700 });
  // Generated beside the target and renamed, so a concurrent reader never
  // sees a half-written key.
  const temp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  await run("ssh-keygen", [
    "-q",
    "-t",
    "ed25519",
    "-N",
    "",
    "-C",
    comment,
    "-f",
    temp,
  ]);
  await Deno.rename(`${temp}.pub`, `${path}.pub`);
  await Deno.rename(temp, path);
}

/** Generates a fresh ed25519 host key pair at `path` (overwriting). */
export async function generateHostKey(
  path: string,
  comment: string,
): Promise<void> {
  await Deno.remove(path).catch(() => {});
  await Deno.remove(`${path}.pub`).catch(() => {});
  await run("ssh-keygen", [
    "-q",
    "-t",
    "ed25519",
    "-N",
    "",
    "-C",
    comment,
    "-f",
    path,
  ]);
}

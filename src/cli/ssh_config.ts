/**
 * `banger ssh-config [--install|--uninstall]`: banger's `Host *.vm` block
 * for OpenSSH, and the one marker-fenced `Include` of it in
 * `~/.ssh/config` (nothing else in banger edits that file).
 *
 * Names are resolved through banger, not DNS: the block's `ProxyCommand`
 * runs `banger internal ssh-proxy %h %p`, which asks the daemon for the
 * VM's address and relays the connection. This works the same on hosts
 * with and without systemd-resolved, from any OpenSSH client, and the host
 * key is still checked under the name typed (`<name>.vm`), which is how
 * banger pins it.
 *
 * @module
 */
import { dirname } from "node:path";
import type { Paths } from "../paths.ts";
import type { Launcher } from "../roles.ts";
import { shellJoin } from "../ssh/quote.ts";

/** First line of banger's fenced block in `~/.ssh/config`. */
export const BEGIN_MARKER = "# >>> banger ssh-config >>>";
/** Last line of banger's fenced block in `~/.ssh/config`. */
export const END_MARKER = "# <<< banger ssh-config <<<";

/** What the `Host *.vm` block refers to. */
export interface SshConfigInputs {
  key: string;
  knownHosts: string;
  launcher: Launcher;
  /** BANGER_ROOT to pin in the proxy command ("/" pins nothing). */
  root: string;
}

/** The text of banger's ssh_config (`~/.config/banger/ssh_config`). */
export function renderSshConfig(i: SshConfigInputs): string {
  const proxy = [
    ...(i.root !== "/" ? ["env", `BANGER_ROOT=${i.root}`] : []),
    i.launcher.exec,
    ...i.launcher.prefix,
    "internal",
    "ssh-proxy",
  ];
  // ssh expands %h and %p itself; everything else is quoted for sh -c.
  const proxyCommand = `${shellJoin(proxy)} %h %p`;
  return [
    "# Written by banger (banger ssh-config --install). Guests are named",
    "# <name>.vm; the proxy command asks banger for their address.",
    "Host *.vm",
    "  User root",
    `  IdentityFile ${configQuote(i.key)}`,
    "  IdentitiesOnly yes",
    `  UserKnownHostsFile ${configQuote(i.knownHosts)}`,
    "  GlobalKnownHostsFile /dev/null",
    "  StrictHostKeyChecking accept-new",
    "  CheckHostIP no",
    "  HashKnownHosts no",
    `  ProxyCommand ${proxyCommand}`,
    "",
  ].join("\n");
}

/**
 * The fenced block for `~/.ssh/config`. It goes first in the file: an
 * `Include` after a `Host` line would only apply inside that host's block.
 */
export function includeBlock(sshConfigPath: string): string {
  return [
    BEGIN_MARKER,
    `Include ${configQuote(sshConfigPath)}`,
    END_MARKER,
    "",
  ].join("\n");
}

/**
 * Returns `text` with banger's fenced block removed (every copy, and the
 * blank line that followed it when it was added).
 */
export function withoutBlock(text: string): string {
  const lines = text.split("\n");
  const kept: string[] = [];
  let inside = false;
  let skipBlank = false;
  for (const line of lines) {
    if (line.trim() === BEGIN_MARKER) {
      inside = true;
      continue;
    }
    if (inside) {
      if (line.trim() === END_MARKER) {
        inside = false;
        skipBlank = true;
      }
      continue;
    }
    if (skipBlank && line === "") {
      skipBlank = false;
      continue;
    }
    skipBlank = false;
    kept.push(line);
  }
  if (inside) {
    throw new Error(
      `Cannot edit ssh config: "${BEGIN_MARKER}" has no "${END_MARKER}"; fix the file by hand`,
    );
  }
  return kept.join("\n");
}

/** Returns `text` with exactly one fenced block, at the top. */
export function withBlock(text: string, sshConfigPath: string): string {
  const rest = withoutBlock(text);
  return includeBlock(sshConfigPath) + (rest === "" ? "" : `\n${rest}`);
}

/** What {@linkcode installSshConfig} and the uninstall changed. */
export interface SshConfigChange {
  sshConfig: string;
  userConfig: string;
  changed: boolean;
}

/**
 * Writes banger's ssh_config and adds the fenced `Include` to
 * `~/.ssh/config` (created 0600 when missing). Running it again changes
 * nothing.
 */
export async function installSshConfig(
  paths: Paths,
  inputs: SshConfigInputs,
): Promise<SshConfigChange> {
  await Deno.mkdir(dirname(paths.sshConfig), { recursive: true, mode: 0o700 });
  await writeIfChanged(paths.sshConfig, renderSshConfig(inputs));
  const userConfig = userSshConfig(paths);
  await Deno.mkdir(dirname(userConfig), { recursive: true, mode: 0o700 });
  const before = await readOrEmpty(userConfig);
  const after = withBlock(before, paths.sshConfig);
  const changed = await writeIfChanged(userConfig, after, before);
  return { sshConfig: paths.sshConfig, userConfig, changed };
}

/** Removes the fenced `Include` from `~/.ssh/config` (if present). */
export async function uninstallSshConfig(
  paths: Paths,
): Promise<SshConfigChange> {
  const userConfig = userSshConfig(paths);
  const before = await readOrEmpty(userConfig);
  const changed = before === ""
    ? false
    : await writeIfChanged(userConfig, withoutBlock(before), before);
  return { sshConfig: paths.sshConfig, userConfig, changed };
}

/** `~/.ssh/config` of the user whose HOME banger runs with. */
export function userSshConfig(paths: Paths): string {
  return `${paths.home}/.ssh/config`;
}

async function readOrEmpty(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "";
    throw error;
  }
}

/** Writes through a temp file and rename; returns whether it changed. */
async function writeIfChanged(
  path: string,
  text: string,
  before?: string,
): Promise<boolean> {
  const old = before ?? await readOrEmpty(path);
  if (old === text) return false;
  // Keep the mode of an existing file (ssh refuses group-writable configs).
  const mode = await Deno.stat(path).then((s) => (s.mode ?? 0o600) & 0o777)
    .catch(() => 0o600);
  const temp = `${path}.banger-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeTextFile(temp, text, { mode });
  await Deno.rename(temp, path);
  return true;
}

/** Quotes a path for ssh_config when it holds spaces or quotes. */
function configQuote(path: string): string {
  return /^[A-Za-z0-9_@%+=:,./~-]+$/.test(path)
    ? path
    : `"${path.replaceAll('"', '\\"')}"`;
}

/**
 * Starting and ending a jailed Firecracker, in the root helper.
 *
 * The jailer is started with argv only; it drops to the owner's uid and
 * gid, pivots into the staged chroot and, with `--daemonize`, becomes a
 * session leader with its stdio on /dev/null before exec'ing Firecracker,
 * so Firecracker outlives the request, the helper and the daemon.
 *
 * @module
 */
import { processInfo, readProcFile, sendSignal } from "../util/procfs.ts";
import { CHROOT_API_SOCKET, type JailPaths } from "./layout.ts";

/** What the jailer needs to know. */
export interface JailerLaunch {
  id: string;
  /** The firecracker binary (absolute path; the jailer copies it in). */
  execFile: string;
  uid: number;
  gid: number;
  /** banger's `jail/` directory. */
  chrootBase: string;
  enablePci: boolean;
}

/** The process name a jailed Firecracker has. */
const FIRECRACKER_COMM = "firecracker";
/** How long the jailer gets to write its pid file and open the socket. */
const START_TIMEOUT_MS = 10_000;

/** The jailer's argv (without the program). */
export function jailerArgs(l: JailerLaunch): string[] {
  return [
    "--id",
    l.id,
    "--exec-file",
    l.execFile,
    "--uid",
    String(l.uid),
    "--gid",
    String(l.gid),
    "--chroot-base-dir",
    l.chrootBase,
    "--daemonize",
    "--",
    "--api-sock",
    CHROOT_API_SOCKET,
    ...(l.enablePci ? ["--enable-pci"] : []),
  ];
}

/**
 * Starts the jailer and waits until Firecracker runs: the pid file exists,
 * its pid's comm is `firecracker`, and the API socket is there. Returns
 * the pid. Throws with the jailer's own error output when it exits first.
 * Requires `--allow-run` for the jailer and cat, ps.
 */
export async function startJailer(
  jailerBin: string,
  launch: JailerLaunch,
  paths: JailPaths,
): Promise<number> {
  const child = new Deno.Command(jailerBin, {
    args: jailerArgs(launch),
    stdin: "null",
    stdout: "null",
    // Read until the jailer daemonizes (its stderr becomes /dev/null) or
    // exits; either way the pipe ends, so nothing is left writing to it.
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const collecting = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) stderr += decoder.decode(chunk);
  })();
  let exited: Deno.CommandStatus | undefined;
  child.status.then((status) => exited = status);
  child.unref();

  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited) {
      await collecting.catch(() => {});
      throw new Error(
        `the jailer exited with status ${exited.code}: ${
          stderr.trim().split("\n").slice(-4).join(" ") || "no output"
        }`,
      );
    }
    const pid = await readPidFile(paths.pidFile);
    if (pid && (await isJailedFirecracker(pid, launch.id))) {
      const socket = await Deno.lstat(paths.apiSocket).catch(() => undefined);
      if (socket?.isSocket) return pid;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(
    `the jailer did not start Firecracker within ${START_TIMEOUT_MS / 1000}s`,
  );
}

/** The pid in the jailer's pid file, if any. */
export async function readPidFile(path: string): Promise<number | undefined> {
  const text = await Deno.readTextFile(path).catch(() => "");
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * True when `pid` is a live Firecracker of jail `id`: its comm is
 * `firecracker` (a chrooted process cannot be recognised by a host path)
 * and its arguments carry `--id <id>`.
 */
export async function isJailedFirecracker(
  pid: number,
  id: string,
): Promise<boolean> {
  const comm = await readProcFile(`/proc/${pid}/comm`).catch(() => "");
  if (comm.trim() !== FIRECRACKER_COMM) return false;
  const info = await processInfo(pid);
  return info !== undefined && !info.state.startsWith("Z") &&
    ` ${info.args} `.includes(` --id ${id} `);
}

/**
 * Ends jail `id`'s Firecracker: SIGTERM, then SIGKILL after `timeoutMs`.
 * A pid that is no longer that Firecracker is left alone.
 */
export async function endJailedFirecracker(
  paths: JailPaths,
  id: string,
  timeoutMs = 3000,
): Promise<void> {
  const pid = await readPidFile(paths.pidFile);
  if (!pid || !(await isJailedFirecracker(pid, id))) return;
  await sendSignal(pid, "TERM");
  if (await gone(pid, id, timeoutMs)) return;
  await sendSignal(pid, "KILL");
  if (!(await gone(pid, id, 5000))) {
    throw new Error(
      `Cannot end jailed Firecracker ${pid}: still alive after SIGKILL`,
    );
  }
}

async function gone(pid: number, id: string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!(await isJailedFirecracker(pid, id))) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !(await isJailedFirecracker(pid, id));
}

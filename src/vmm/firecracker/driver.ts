/**
 * The Firecracker driver. Without the jailer the daemon starts Firecracker
 * itself, as the owner, in a session of its own; with the jailer the root
 * helper stages a chroot and starts the jailer (./jail seam), and the
 * daemon reaches the API socket inside the chroot through a short symlink
 * at the VM's control socket path. Either way the machine is then
 * configured over the API and started with `InstanceStart`.
 *
 * @module
 */
import { basename, join } from "node:path";
import type {
  JailLaunchParams,
  JailLaunchResult,
} from "../../protocol/jail.ts";
import { run } from "../../util/exec.ts";
import { processInfo, readProcFile, sendSignal } from "../../util/procfs.ts";
import type { LaunchSpec, VmmDriver, VmmHandles } from "../types.ts";
import { apiCall } from "./api.ts";
import {
  configureRequests,
  FIRECRACKER_FILES,
  firecrackerPaths,
  INSTANCE_START,
} from "./requests.ts";

export { FIRECRACKER_FILES };
import { compareVersions, SERIAL_API_SINCE, type Version } from "./version.ts";

/** The process name Firecracker runs under (`/proc/<pid>/comm`). */
export const FIRECRACKER_COMM = "firecracker";

/** How long Firecracker gets to open its API socket. */
const SOCKET_TIMEOUT_MS = 15_000;

/** The privileged half of a jailed launch: the root helper. */
export interface JailSeam {
  launch(params: JailLaunchParams): Promise<JailLaunchResult>;
  /**
   * Ends the jailed VMM of VM `id`, if one runs, and removes its chroot
   * (unmounting first). Safe to repeat.
   */
  terminate(id: string): Promise<void>;
}

/** Options of {@linkcode firecrackerDriver}. */
export interface FirecrackerOptions {
  /** The firecracker binary (absolute, or a name on PATH). */
  bin: string;
  /** Its version, from `firecracker --version`. */
  version: Version;
  /** Set when the jailer is enabled. */
  jail?: JailSeam | undefined;
  /** Pass `--enable-pci` (Firecracker 1.13 and later). */
  enablePci?: boolean;
}

/** Creates the Firecracker driver. */
export function firecrackerDriver(options: FirecrackerOptions): VmmDriver {
  // TODO: before 1.14 the console goes to Firecracker's stdout, which is
  // /dev/null under the jailer's --daemonize; capturing it would need the
  // jailer started with its stdout on the console file (fd passing, which
  // Deno.Command cannot do).
  const serialApi = compareVersions(options.version, SERIAL_API_SINCE) >= 0;
  const jail = options.jail;

  async function launchDirect(spec: LaunchSpec): Promise<number> {
    // Firecracker refuses to start when its socket path exists, and a
    // stale one is left behind whenever a VMM dies.
    await removeIfPresent(spec.controlSocket);
    const child = new Deno.Command(options.bin, {
      args: [
        "--api-sock",
        spec.controlSocket,
        "--id",
        spec.id,
        ...(options.enablePci ? ["--enable-pci"] : []),
      ],
      // Its own session: Firecracker outlives this request and the daemon.
      detached: true,
      stdin: "null",
      stdout: "null",
      stderr: "null",
      cwd: spec.dir,
    }).spawn();
    child.unref();
    // Reap it when it exits while this daemon still runs.
    child.status.catch(() => {});
    await Deno.writeTextFile(
      join(spec.dir, FIRECRACKER_FILES.pid),
      `${child.pid}\n`,
      { mode: 0o600 },
    );
    return child.pid;
  }

  async function launchJailed(
    spec: LaunchSpec,
    seam: JailSeam,
  ): Promise<number> {
    const result = await seam.launch({
      id: spec.id,
      kernel: spec.kernel,
      ...(spec.initrd ? { initrd: spec.initrd } : {}),
      drives: spec.drives.map((d) => ({ id: d.id, path: d.path })),
      log: join(spec.dir, FIRECRACKER_FILES.log),
      metrics: join(spec.dir, FIRECRACKER_FILES.metrics),
      console: spec.consoleLog,
      enablePci: options.enablePci ?? false,
    });
    // The socket inside the chroot is usually past sun_path's 108 bytes;
    // the control socket path is short and fixed per address slot.
    await removeIfPresent(spec.controlSocket);
    // Deno.symlink needs unscoped read and write permission, which the
    // daemon does not have; ln makes the same link.
    await run("ln", ["-s", "--", result.apiSocket, spec.controlSocket]);
    await Deno.writeTextFile(
      join(spec.dir, FIRECRACKER_FILES.pid),
      `${result.pid}\n`,
      { mode: 0o600 },
    );
    return result.pid;
  }

  async function release(id: string, dir: string, socket: string) {
    const failures: string[] = [];
    if (jail) {
      // Terminate, not only remove: after a crash a jailed Firecracker may
      // run although no pid was ever recorded for it.
      await jail.terminate(id).catch((e) => failures.push(String(e.message)));
    } else {
      // Likewise unjailed: the pid reaches the handles only once the
      // machine is configured, but the pid file is written at spawn, so a
      // daemon that died in between still finds its Firecracker here.
      const pid = Number(
        (await Deno.readTextFile(join(dir, FIRECRACKER_FILES.pid)).catch(
          () => "",
        )).trim(),
      );
      if (Number.isInteger(pid) && pid > 0 && await isFirecracker(pid, id)) {
        await driver.terminate(
          { vmm: "firecracker", pid, controlSocket: socket },
          dir,
        ).catch((e) => failures.push(String(e.message)));
      }
    }
    for (const path of [socket, join(dir, FIRECRACKER_FILES.pid)]) {
      await removeIfPresent(path).catch((e) => failures.push(String(e)));
    }
    if (failures.length) throw new Error(failures.join("; "));
  }

  const driver: VmmDriver = {
    name: "firecracker",
    rootFormat: "raw",
    // A guest power-off halts the vCPUs and leaves Firecracker running; a
    // reboot (reboot=k on the command line) ends it.
    guestStop: "reboot",
    async launch(spec: LaunchSpec): Promise<VmmHandles> {
      const paths = firecrackerPaths(spec, { jailed: !!jail, serialApi });
      const requests = configureRequests(spec, paths);
      // Firecracker opens its log and metrics files but never creates
      // them; the console file is made here so that it is the owner's.
      for (
        const file of [
          join(spec.dir, FIRECRACKER_FILES.log),
          join(spec.dir, FIRECRACKER_FILES.metrics),
          spec.consoleLog,
        ]
      ) {
        await Deno.writeFile(file, new Uint8Array(), { mode: 0o600 });
      }
      let pid: number | undefined;
      try {
        pid = jail ? await launchJailed(spec, jail) : await launchDirect(spec);
        await waitForApi(spec.controlSocket, pid);
        for (const request of [...requests, INSTANCE_START]) {
          await apiCall(spec.controlSocket, request);
        }
      } catch (error) {
        // A jailed Firecracker may run although its pid never came back
        // here (a failure right after the helper started it).
        if (jail) await jail.terminate(spec.id).catch(() => {});
        else if (pid) {
          const handles = {
            vmm: "firecracker",
            pid,
            controlSocket: spec.controlSocket,
          };
          await driver.terminate(handles, spec.dir).catch(() => {});
        }
        await release(spec.id, spec.dir, spec.controlSocket).catch(() => {});
        throw new Error(
          `Cannot start VM "${spec.name}" with Firecracker: ${
            (error as Error).message
          }; see "${join(spec.dir, FIRECRACKER_FILES.log)}"`,
          { cause: error },
        );
      }
      return { vmm: "firecracker", pid, controlSocket: spec.controlSocket };
    },
    isAlive(handles, dir) {
      return isFirecracker(handles.pid, basename(dir));
    },
    async terminate(handles, dir, timeoutMs = 3000) {
      const id = basename(dir);
      if (jail) {
        await jail.terminate(id);
        return;
      }
      // Firecracker has no quit request; the guest was given its chance
      // to shut down over ssh by the caller. Never Ctrl-Alt-Del: it
      // reboots some guests and is ignored by others.
      if (!(await isFirecracker(handles.pid, id))) return;
      await sendSignal(handles.pid, "TERM");
      if (await waitNotFirecracker(handles.pid, id, timeoutMs)) return;
      await sendSignal(handles.pid, "KILL");
      if (!(await waitNotFirecracker(handles.pid, id, 5000))) {
        throw new Error(
          `Cannot end Firecracker process ${handles.pid}: still alive after SIGKILL`,
        );
      }
    },
    release,
  };
  return driver;
}

/**
 * True when `pid` is a live Firecracker of VM `id`: its comm is
 * `firecracker` and its arguments carry `--id <id>`, so neither a reused
 * pid nor another VM's Firecracker passes. Requires `--allow-run` for cat
 * and ps.
 */
export async function isFirecracker(pid: number, id: string): Promise<boolean> {
  const comm = await readProcFile(`/proc/${pid}/comm`).catch(() => "");
  if (comm.trim() !== FIRECRACKER_COMM) return false;
  const info = await processInfo(pid);
  return info !== undefined && !info.state.startsWith("Z") &&
    ` ${info.args} `.includes(` --id ${id} `);
}

async function waitNotFirecracker(
  pid: number,
  id: string,
  timeoutMs: number,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!(await isFirecracker(pid, id))) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !(await isFirecracker(pid, id));
}

/** Waits until the API answers `GET /`, or the process is gone. */
async function waitForApi(socket: string, pid: number) {
  const deadline = Date.now() + SOCKET_TIMEOUT_MS;
  let last = "";
  while (Date.now() < deadline) {
    try {
      await apiCall(socket, { method: "GET", path: "/" });
      return;
    } catch (error) {
      last = (error as Error).message;
    }
    // Only liveness here: a wrapper may still be exec'ing into Firecracker.
    const info = await processInfo(pid);
    if (info === undefined || info.state.startsWith("Z")) {
      throw new Error(
        `Firecracker (pid ${pid}) exited before its API socket answered`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `Firecracker's API socket "${socket}" did not answer within ${
      SOCKET_TIMEOUT_MS / 1000
    }s: ${last}`,
  );
}

async function removeIfPresent(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

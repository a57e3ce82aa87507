/**
 * The Deno permissions each role runs with.
 *
 * One binary serves as CLI, owner daemon and root helper, so it is started
 * with the union of all three roles' permissions. `main.ts` then runs the
 * chosen role in a Web Worker whose permissions are narrowed to the role's
 * set below (Deno's `Worker` `deno.permissions` option, which works the same
 * under `deno run` and in a compiled binary). The main thread only relays
 * the worker's exit status.
 *
 * @module
 */
import { join } from "node:path";
import { type Paths, vmmSocket } from "./paths.ts";

export type Role = "cli" | "daemon" | "helper";

/** A worker's permission set, in the shape `new Worker` takes. */
export interface RolePermissions {
  read: boolean | string[];
  write: boolean | string[];
  run: boolean | string[];
  net: boolean | string[];
  env: boolean;
  sys: boolean | string[];
  ffi: boolean;
  import: boolean;
}

/** How to start banger again as another role (daemon or helper). */
export interface Launcher {
  /** The executable: the compiled banger binary, or deno. */
  exec: string;
  /** Arguments before the role's own (e.g. `run … main.ts` under deno). */
  prefix: string[];
}

/** Programs the daemon runs. */
export const DAEMON_PROGRAMS = [
  "qemu-img",
  "mkfs.ext4",
  "mmdebstrap",
  "cp",
  "ssh",
  "ssh-keygen",
  "lz4",
  "gzip",
  "xz",
  "zstd",
  // Deno refuses /proc reads and Deno.kill without --allow-all.
  "cat",
  "ps",
  "kill",
  // Deno.symlink needs unscoped read and write (Firecracker socket links).
  "ln",
];

/**
 * Programs the helper runs: network plumbing, and for jailed VMs cat (the
 * mount table and /proc/<pid>/comm), ps and kill (ending a jailed
 * Firecracker). The jailer is added when one is configured.
 */
export const HELPER_PROGRAMS = ["ip", "nft", "cat", "ps", "kill"];

/**
 * Library directories bind-mounted read-only into a jail when Firecracker
 * is dynamically linked; the helper reads them to see which exist.
 */
export const JAIL_LIBRARY_DIRS = ["/lib", "/lib64", "/usr/lib", "/usr/lib64"];

/** Programs the CLI runs: ssh sessions, the workspace copy, and itself. */
export const CLI_PROGRAMS = ["ssh", "git", "tar", "setsid"];

/** Most VMM control sockets the daemon is allowed to reach. */
export const MAX_VMM_SOCKETS = 1022;

/** What of the configuration decides a role's permissions. */
export interface RoleConfig {
  /** The VMM binary the daemon may launch. */
  qemuBin: string;
  /** Number of guest address slots (host addresses in the range). */
  hostSlots: number;
  /** The firecracker binary, when it resolves to a path. */
  firecrackerBin?: string | undefined;
  /** The jailer binary, when it resolves to a path. */
  jailerBin?: string | undefined;
}

/**
 * The permission set of `role`. Unix sockets need `net` permission per
 * exact path in Deno, so the daemon's list names its own socket, the
 * helper's, and one control socket per guest address slot.
 */
export function rolePermissions(
  role: Role,
  paths: Paths,
  launcher: Launcher,
  config: RoleConfig = { qemuBin: "qemu-system-x86_64", hostSlots: 254 },
): RolePermissions {
  const unix = (path: string) => `unix:${path}`;
  const userDirs = [paths.userStateDir, paths.userConfigDir];
  switch (role) {
    case "cli":
      return {
        // The CLI reads repositories wherever the user keeps them.
        read: true,
        write: [
          ...userDirs,
          join(paths.home, ".ssh"),
          paths.daemonSocket,
          paths.helperSocket,
        ],
        run: [...CLI_PROGRAMS, launcher.exec],
        net: [unix(paths.daemonSocket), unix(paths.helperSocket)],
        env: true,
        sys: true,
        ffi: false,
        import: false,
      };
    case "daemon":
      return {
        read: [
          paths.configDir,
          paths.stateDir,
          paths.cacheDir,
          paths.runDir,
          paths.helperRunDir,
          ...userDirs,
          "/etc/apt",
          "/dev/kvm",
          // Resolving firecracker_bin (is it there, is it executable).
          ...(config.firecrackerBin ? [config.firecrackerBin] : []),
        ],
        write: [
          paths.stateDir,
          paths.cacheDir,
          paths.runDir,
          paths.helperSocket,
          ...userDirs,
        ],
        run: [
          ...DAEMON_PROGRAMS,
          config.qemuBin,
          ...(config.firecrackerBin ? [config.firecrackerBin] : []),
        ],
        net: [
          "127.0.0.1",
          unix(paths.daemonSocket),
          unix(paths.helperSocket),
          ...Array.from(
            { length: Math.min(config.hostSlots, MAX_VMM_SOCKETS) },
            (_, i) => unix(vmmSocket(paths, i + 1)),
          ),
        ],
        env: true,
        sys: true,
        ffi: false,
        import: false,
      };
    case "helper":
      return {
        read: [
          paths.configDir,
          paths.stateDir,
          paths.helperRunDir,
          // The owner's primary group, for the jailer's --gid.
          "/etc/passwd",
          // Copied into jails, and inspected for dynamic linking.
          ...(config.firecrackerBin ? [config.firecrackerBin] : []),
          ...(config.jailerBin ? [config.jailerBin] : []),
          ...JAIL_LIBRARY_DIRS,
        ],
        write: [paths.helperRunDir, paths.stateDir],
        run: [
          ...HELPER_PROGRAMS,
          ...(config.jailerBin ? [config.jailerBin] : []),
        ],
        net: [unix(paths.helperSocket)],
        env: true,
        sys: ["systemMemoryInfo"],
        // SO_PEERCRED on accepted sockets (and, for the jailer, mknod and
        // mount) have no Deno API.
        ffi: true,
        import: false,
      };
  }
}

/** Chooses the role from the first argument. */
export function roleOf(args: readonly string[]): Role {
  if (args[0] === "daemon" && args[1] !== "stop") return "daemon";
  if (args[0] === "helper") return "helper";
  return "cli";
}

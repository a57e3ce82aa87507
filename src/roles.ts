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
import { formatIpv4, parseCidr } from "./util/ipv4.ts";
import { DEFAULTS } from "./config.ts";

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
  // mmdebstrap runs under them: a parent-death signal, and (as root) a
  // mount namespace of its own.
  "setpriv",
  "unshare",
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
/**
 * Programs the helper runs: network plumbing; `sysctl` turns IPv4
 * forwarding on (Deno refuses /proc writes without --allow-all);
 * `resolvectl` routes `~vm` where systemd-resolved runs; for jailed VMs cat
 * (the mount table and /proc/<pid>/comm), ps and kill (ending a jailed
 * Firecracker). The jailer is added when one is configured.
 */
export const HELPER_PROGRAMS = [
  "ip",
  "nft",
  "sysctl",
  "resolvectl",
  "cat",
  "ps",
  "kill",
];

/** Where systemd-resolved's socket shows that it runs (helper reads it). */
export const RESOLVED_RUN_DIR = "/run/systemd/resolve";

/**
 * Library directories bind-mounted read-only into a jail when Firecracker
 * is dynamically linked; the helper reads them to see which exist.
 */
export const JAIL_LIBRARY_DIRS = ["/lib", "/lib64", "/usr/lib", "/usr/lib64"];

/**
 * Programs the CLI runs: ssh sessions and the workspace copy. Starting the
 * daemon and the helper is the main thread's job (src/role_worker.ts), so
 * the CLI needs no program that starts arbitrary others.
 */
export const CLI_PROGRAMS = ["ssh", "git", "tar"];

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
  /** The guest range; the CLI may connect to its hosts (ssh-proxy). */
  cidr?: string;
}

/**
 * The guest addresses of `cidr` (at most {@linkcode MAX_VMM_SOCKETS}, the
 * most VMs the daemon can reach anyway). Deno's net permission takes hosts,
 * not ranges, hence the list.
 */
export function guestHosts(cidr: string): string[] {
  const range = parseCidr(cidr);
  const count = Math.min(range.size - 2, MAX_VMM_SOCKETS);
  return Array.from(
    { length: count },
    (_, i) => formatIpv4(range.network + i + 1),
  );
}

/**
 * The permission set of `role`. Unix sockets need `net` permission per
 * exact path in Deno, so the daemon's list names its own socket, the
 * helper's, and one control socket per guest address slot.
 */
export function rolePermissions(
  role: Role,
  paths: Paths,
  config: RoleConfig = { qemuBin: "qemu-system-x86_64", hostSlots: 254 },
  outputs: readonly string[] = [],
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
          ...outputs,
        ],
        run: CLI_PROGRAMS,
        net: [
          unix(paths.daemonSocket),
          unix(paths.helperSocket),
          // `banger internal ssh-proxy` relays ssh to guests.
          ...guestHosts(config.cidr ?? DEFAULTS.cidr),
        ],
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
          paths.helperStateDir,
          paths.helperRunDir,
          RESOLVED_RUN_DIR,
          // The owner's primary group, for the jailer's --gid.
          "/etc/passwd",
          // Copied into jails, and inspected for dynamic linking.
          ...(config.firecrackerBin ? [config.firecrackerBin] : []),
          ...(config.jailerBin ? [config.jailerBin] : []),
          ...JAIL_LIBRARY_DIRS,
        ],
        // Nothing in the owner's state: the helper writes only where the
        // owner cannot swap a path under it.
        write: [paths.helperRunDir, paths.helperStateDir],
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

/** CLI flags whose value is a file the user asks banger to write. */
export const OUTPUT_FLAGS = ["--timings", "--output"];

/**
 * The files named on the command line for banger to write (the values of
 * {@linkcode OUTPUT_FLAGS}): the CLI may write those and nothing else
 * outside its own directories.
 */
export function outputPaths(args: readonly string[]): string[] {
  const paths: string[] = [];
  const end = args.indexOf("--");
  const own = end >= 0 ? args.slice(0, end) : args;
  own.forEach((arg, i) => {
    for (const flag of OUTPUT_FLAGS) {
      if (arg === flag && own[i + 1]) paths.push(own[i + 1]!);
      else if (arg.startsWith(`${flag}=`)) {
        paths.push(arg.slice(flag.length + 1));
      }
    }
  });
  return paths;
}

/** Chooses the role from the first argument. */
export function roleOf(args: readonly string[]): Role {
  // `banger daemon --help` asks for help, which the CLI gives; it must not
  // start a daemon in the foreground.
  if (args.some((a) => a === "--help" || a === "-h")) return "cli";
  if (args[0] === "daemon" && args[1] !== "stop") return "daemon";
  if (args[0] === "helper") return "helper";
  return "cli";
}

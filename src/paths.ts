/**
 * Where banger keeps its files.
 *
 * System paths (configuration, state, caches, sockets) live under the
 * filesystem root by default and move under `BANGER_ROOT` when it is set, so
 * several isolated instances (tests, demos) run side by side. User paths
 * (known_hosts, ssh_config) follow `HOME`. `BANGER_CACHE_DIR` points the
 * build cache somewhere else, so that isolated instances can share one built
 * golden image.
 *
 * @module
 */
import { join } from "node:path";

/** Every path banger uses, resolved once per process. */
export interface Paths {
  /** The prefix all system paths hang from ("/" for a system install). */
  root: string;
  configDir: string;
  installFile: string;
  configFile: string;
  stateDir: string;
  dbFile: string;
  imagesDir: string;
  kernelsDir: string;
  vmsDir: string;
  /**
   * The helper's own state, root's and 0711: its log and the jailer's
   * chroots, kept out of the owner-writable state directory so that the
   * owner cannot swap anything the helper writes or mounts under.
   */
  helperStateDir: string;
  jailDir: string;
  sshDir: string;
  sshKey: string;
  cacheDir: string;
  runDir: string;
  daemonSocket: string;
  /** Directory of the VMMs' control sockets (QMP or Firecracker API). */
  vmmSocketDir: string;
  daemonPidFile: string;
  daemonLog: string;
  helperRunDir: string;
  helperSocket: string;
  helperPidFile: string;
  helperLog: string;
  home: string;
  userStateDir: string;
  knownHosts: string;
  userConfigDir: string;
  sshConfig: string;
}

/** Options for {@linkcode resolvePaths}; defaults come from the environment. */
export interface PathEnv {
  root?: string | undefined;
  home?: string | undefined;
  cacheDir?: string | undefined;
}

/**
 * Resolves every banger path from `BANGER_ROOT`, `HOME` and
 * `BANGER_CACHE_DIR` (or the given overrides).
 *
 * Requires `--allow-env` when called without overrides.
 */
export function resolvePaths(env: PathEnv = readPathEnv()): Paths {
  const root = env.root && env.root !== "" ? env.root : "/";
  const at = (...parts: string[]) => join(root, ...parts);
  const home = env.home ?? "/root";
  const stateDir = at("var/lib/banger");
  const helperStateDir = at("var/lib/banger-root");
  const runDir = at("run/banger");
  const helperRunDir = at("run/banger-root");
  const userStateDir = join(home, ".local/state/banger");
  const userConfigDir = join(home, ".config/banger");
  return {
    root,
    configDir: at("etc/banger"),
    installFile: at("etc/banger/install.toml"),
    configFile: at("etc/banger/config.toml"),
    stateDir,
    dbFile: join(stateDir, "state.db"),
    imagesDir: join(stateDir, "images"),
    kernelsDir: join(stateDir, "kernels"),
    vmsDir: join(stateDir, "vms"),
    helperStateDir,
    jailDir: join(helperStateDir, "jail"),
    sshDir: join(stateDir, "ssh"),
    sshKey: join(stateDir, "ssh/id_ed25519"),
    cacheDir: env.cacheDir && env.cacheDir !== ""
      ? env.cacheDir
      : at("var/cache/banger"),
    runDir,
    daemonSocket: join(runDir, "daemon.sock"),
    vmmSocketDir: join(runDir, "vmm"),
    daemonPidFile: join(runDir, "daemon.pid"),
    daemonLog: join(stateDir, "daemon.log"),
    helperRunDir,
    helperSocket: join(helperRunDir, "helper.sock"),
    helperPidFile: join(helperRunDir, "helper.pid"),
    helperLog: join(helperStateDir, "helper.log"),
    home,
    userStateDir,
    knownHosts: join(userStateDir, "ssh/known_hosts"),
    userConfigDir,
    sshConfig: join(userConfigDir, "ssh_config"),
  };
}

/** Reads the variables {@linkcode resolvePaths} depends on. */
export function readPathEnv(): PathEnv {
  return {
    root: Deno.env.get("BANGER_ROOT"),
    home: Deno.env.get("HOME"),
    cacheDir: Deno.env.get("BANGER_CACHE_DIR"),
  };
}

/**
 * The control socket of the VM holding host address `hostIndex` of the
 * guest range. Keyed by address slot rather than VM id so that the set of
 * sockets the daemon may connect to is known before any VM exists, and short
 * enough for `sun_path` whatever the VM's directory is.
 */
export function vmmSocket(paths: Paths, hostIndex: number): string {
  return join(paths.vmmSocketDir, `${hostIndex}.sock`);
}

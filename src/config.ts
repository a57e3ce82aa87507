/**
 * `config.toml`: every key optional, every value checked. A malformed file
 * names the key and the problem and is never silently replaced by defaults.
 *
 * @module
 */
import { parse as parseToml } from "smol-toml";
import { z } from "zod";
import { MAX_DISK_MIB, MIN_MEMORY_MIB, parseSizeMiB } from "./util/size.ts";
import { KernelNameSchema } from "./protocol/kernel.ts";

const sizeString = z.union([z.string(), z.number().int().positive()]);

/** The schema of `config.toml`. Unknown keys are errors, not ignored. */
export const ConfigFileSchema = z.strictObject({
  log_level: z.enum(["debug", "info", "warn", "error"]).optional(),
  vmm: z.enum(["auto", "firecracker", "qemu"]).optional(),
  firecracker_bin: z.string().min(1).optional(),
  jailer_bin: z.string().min(1).optional(),
  jailer_enabled: z.boolean().optional(),
  qemu_bin: z.string().min(1).optional(),
  accel: z.enum(["auto", "kvm", "tcg"]).optional(),
  ssh_key_path: z.string().min(1).optional(),
  ssh_timeout: z.number().int().positive().optional(),
  default_image_name: z.string().min(1).optional(),
  /** An imported kernel that VMs boot unless --kernel names another. */
  default_kernel: KernelNameSchema.optional(),
  debian_mirror: z.string().url().optional(),
  debian_security_mirror: z.string().url().optional(),
  bridge_name: z.string().regex(/^br-banger[a-z0-9]{0,6}$/, {
    message: 'must start with "br-banger" and be at most 15 characters',
  }).optional(),
  bridge_ip: z.ipv4().optional(),
  cidr: z.cidrv4().optional(),
  default_dns: z.ipv4().optional(),
  tap_pool_size: z.number().int().min(0).max(64).optional(),
  auto_stop_stale_after: z.number().int().min(0).optional(),
  stats_poll_interval: z.number().int().positive().optional(),
  vm_defaults: z.strictObject({
    vcpu: z.number().int().positive().max(64).optional(),
    memory_mib: z.number().int().positive().optional(),
    disk_size: sizeString.optional(),
  }).optional(),
  file_sync: z.array(z.strictObject({
    host: z.string().min(1),
    guest: z.string().startsWith("/root"),
    mode: z.string().regex(/^0?[0-7]{3,4}$/).optional(),
  })).optional(),
});

/** Where a configuration value came from, as `banger doctor` shows it. */
export type Provenance = "config" | "host" | "built-in";

/** A value together with its provenance. */
export interface Sourced<T> {
  value: T;
  from: Provenance;
}

/** The configuration with every default filled in. */
export interface Config {
  logLevel: "debug" | "info" | "warn" | "error";
  vmm: "auto" | "firecracker" | "qemu";
  firecrackerBin: string;
  jailerBin: string;
  jailerEnabled: boolean;
  qemuBin: string;
  accel: "auto" | "kvm" | "tcg";
  sshKeyPath: string | undefined;
  sshTimeoutSeconds: number | undefined;
  defaultImage: string;
  defaultKernel: string | undefined;
  debianMirror: string | undefined;
  debianSecurityMirror: string | undefined;
  bridgeName: string;
  bridgeIp: string;
  cidr: string;
  defaultDns: string;
  tapPoolSize: number;
  autoStopStaleAfter: number;
  statsPollInterval: number;
  vmDefaults: {
    vcpu: Sourced<number>;
    memoryMib: Sourced<number>;
    diskMib: Sourced<number>;
  };
  fileSync: { host: string; guest: string; mode?: number }[];
}

/** What the host offers, for host-aware defaults. */
export interface HostFacts {
  cpus: number;
  memoryMib: number;
}

/** Built-in defaults of the network and image keys. */
export const DEFAULTS = {
  bridgeName: "br-banger",
  bridgeIp: "172.30.0.1",
  cidr: "172.30.0.0/24",
  defaultDns: "1.1.1.1",
  tapPoolSize: 2,
  defaultImage: "debian-bookworm",
  diskMib: 8192,
} as const;

/**
 * Host-aware VM defaults: a quarter of the CPUs (at least 2, since two TCG
 * threads boot faster than one, at most 4) and an eighth of the memory (at
 * least 1 GiB, at most 8 GiB).
 */
export function hostDefaults(
  host: HostFacts,
): { vcpu: number; memoryMib: number } {
  return {
    vcpu: Math.min(4, Math.max(2, Math.floor(host.cpus / 4))),
    memoryMib: Math.min(8192, Math.max(1024, Math.floor(host.memoryMib / 8))),
  };
}

/** A configuration file that cannot be used, with the key at fault. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * Parses the text of `config.toml` and fills in defaults.
 *
 * Throws {@linkcode ConfigError} naming the file, the key and the problem.
 */
export function parseConfig(
  text: string,
  host: HostFacts,
  file = "config.toml",
): Config {
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (error) {
    throw new ConfigError(
      `Cannot read "${file}": ${(error as Error).message.split("\n")[0]}`,
    );
  }
  const parsed = ConfigFileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = issue.code === "unrecognized_keys"
      ? [...issue.path, ...issue.keys].join(".")
      : issue.path.join(".");
    const why = issue.code === "unrecognized_keys"
      ? "unknown key"
      : issue.message;
    throw new ConfigError(`Invalid "${key}" in "${file}": ${why}`);
  }
  const c = parsed.data;
  const fromHost = hostDefaults(host);
  const d = c.vm_defaults ?? {};
  const disk = d.disk_size === undefined
    ? { value: DEFAULTS.diskMib, from: "built-in" as const }
    : {
      value: sizeKey(String(d.disk_size), "vm_defaults.disk_size", file, {
        mib: MAX_DISK_MIB,
        why: "the largest ext4 disk",
      }),
      from: "config" as const,
    };
  // The same bounds as --memory, so a default can never fail a boot that
  // the flag would have refused up front.
  if (
    d.memory_mib !== undefined &&
    (d.memory_mib < MIN_MEMORY_MIB || d.memory_mib > host.memoryMib)
  ) {
    throw new ConfigError(
      `Invalid "vm_defaults.memory_mib" in "${file}": must be ${MIN_MEMORY_MIB} to ${host.memoryMib} (MiB; this host's memory is the most)`,
    );
  }
  const cidr = c.cidr ?? DEFAULTS.cidr;
  const bridgeIp = c.bridge_ip ?? DEFAULTS.bridgeIp;
  return {
    logLevel: c.log_level ?? "info",
    vmm: c.vmm ?? "auto",
    firecrackerBin: c.firecracker_bin ?? "firecracker",
    jailerBin: c.jailer_bin ?? "jailer",
    jailerEnabled: c.jailer_enabled ?? true,
    qemuBin: c.qemu_bin ?? "qemu-system-x86_64",
    accel: c.accel ?? "auto",
    sshKeyPath: c.ssh_key_path,
    sshTimeoutSeconds: c.ssh_timeout,
    defaultImage: c.default_image_name ?? DEFAULTS.defaultImage,
    defaultKernel: c.default_kernel,
    debianMirror: c.debian_mirror,
    debianSecurityMirror: c.debian_security_mirror,
    bridgeName: c.bridge_name ?? DEFAULTS.bridgeName,
    bridgeIp,
    cidr,
    defaultDns: c.default_dns ?? DEFAULTS.defaultDns,
    tapPoolSize: c.tap_pool_size ?? DEFAULTS.tapPoolSize,
    autoStopStaleAfter: c.auto_stop_stale_after ?? 0,
    statsPollInterval: c.stats_poll_interval ?? 10,
    vmDefaults: {
      vcpu: d.vcpu === undefined
        ? { value: fromHost.vcpu, from: "host" }
        : { value: d.vcpu, from: "config" },
      memoryMib: d.memory_mib === undefined
        ? { value: fromHost.memoryMib, from: "host" }
        : { value: d.memory_mib, from: "config" },
      diskMib: disk,
    },
    fileSync: (c.file_sync ?? []).map((f) => ({
      host: f.host,
      guest: f.guest,
      ...(f.mode ? { mode: parseInt(f.mode, 8) } : {}),
    })),
  };
}

function sizeKey(
  text: string,
  key: string,
  file: string,
  max?: { mib: number; why: string },
): number {
  try {
    return parseSizeMiB(text, key, max);
  } catch (error) {
    throw new ConfigError(
      `Invalid "${key}" in "${file}": ${(error as Error).message}`,
    );
  }
}

/**
 * Reads the configuration file at `path` (a missing file means all
 * defaults) and the host facts. Requires `--allow-read` and `--allow-sys`.
 */
export async function loadConfig(path: string): Promise<Config> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return parseConfig(text, readHostFacts(), path);
}

/** The host's CPU count and memory. Requires `--allow-sys`. */
export function readHostFacts(): HostFacts {
  return {
    cpus: navigator.hardwareConcurrency,
    memoryMib: Math.floor(Deno.systemMemoryInfo().total / 1024 / 1024),
  };
}

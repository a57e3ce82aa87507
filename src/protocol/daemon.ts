/**
 * Methods the owner daemon serves to the CLI, with their parameter and
 * result schemas. Both ends validate with these.
 *
 * @module
 */
import { z } from "zod";
import { KernelNameSchema } from "./kernel.ts";

/** VM names as DNS labels (checked again here, whatever the CLI did). */
export const VmNameSchema = z.string().regex(
  /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/,
  "must be a DNS label: 1-63 of a-z, 0-9 and -, not starting or ending with -",
);

export const VmStateSchema = z.enum([
  "creating",
  "running",
  "stopped",
  "error",
]);
export type VmState = z.infer<typeof VmStateSchema>;

/** What the daemon tells about a VM. */
export const VmInfoSchema = z.strictObject({
  id: z.string(),
  name: z.string(),
  state: VmStateSchema,
  image: z.string(),
  vmm: z.string(),
  ip: z.string(),
  tap: z.string(),
  vcpu: z.number().int(),
  memoryMib: z.number().int(),
  diskMib: z.number().int(),
  pid: z.number().int().nullable(),
  workspace: z.string().nullable(),
  /** Opt-in NAT: the guest reaches beyond the host through masquerade. */
  nat: z.boolean(),
  /** An imported kernel booted instead of the image's, or null. */
  kernel: z.string().nullable(),
  createdAt: z.string(),
  dir: z.string(),
  /** Where vcpu, memory and disk came from: flag, config, host, built-in. */
  specFrom: z.record(z.string(), z.string()).nullable(),
  lastActiveAt: z.string().nullable(),
});
export type VmInfo = z.infer<typeof VmInfoSchema>;

export const PingResultSchema = z.strictObject({
  version: z.string(),
  pid: z.number().int(),
  root: z.string(),
});

export const VmCreateParamsSchema = z.strictObject({
  name: VmNameSchema.optional(),
  image: z.string().min(1).max(64).optional(),
  /** An imported kernel to boot instead of the image's. */
  kernel: KernelNameSchema.optional(),
  vcpu: z.number().int().positive().max(64).optional(),
  memoryMib: z.number().int().positive().max(1024 * 1024).optional(),
  diskMib: z.number().int().positive().max(16 * 1024 * 1024).optional(),
  workspace: z.string().max(4096).optional(),
  /** false: make the disks and stop there (`vm create --no-start`). */
  start: z.boolean().optional(),
  nat: z.boolean().optional(),
});
export type VmCreateParams = z.infer<typeof VmCreateParamsSchema>;

/** Stages of a create, in order, as users see them in progress output. */
export const CREATE_STAGES = [
  "image",
  "disks",
  "network",
  "vmm",
  "boot",
  "ssh",
] as const;
export type CreateStage = typeof CREATE_STAGES[number];

/** Milliseconds spent in each named stage of a create. */
export const TimingsSchema = z.record(z.string(), z.number());

export const VmCreateResultSchema = z.strictObject({
  vm: VmInfoSchema,
  timings: TimingsSchema,
});

export const VmRefParamsSchema = z.strictObject({
  ref: z.string().min(1).max(128),
});
export const VmRefsParamsSchema = z.strictObject({
  refs: z.array(z.string().min(1).max(128)).min(1).max(256),
});

export const VmListResultSchema = z.array(VmInfoSchema);

/** Per-target outcome of a command that takes several VMs. */
export const BatchResultSchema = z.array(z.strictObject({
  ref: z.string(),
  ok: z.boolean(),
  /** A note for people, e.g. "already running". */
  detail: z.string().optional(),
  error: z.strictObject({ code: z.string(), message: z.string() }).optional(),
}));
export type BatchResult = z.infer<typeof BatchResultSchema>;

export const VmSetWorkspaceParamsSchema = z.strictObject({
  ref: z.string().min(1).max(128),
  workspace: z.string().max(4096),
});

export const EmptySchema = z.strictObject({}).optional();

export const ImageInfoSchema = z.strictObject({
  id: z.string(),
  name: z.string(),
  dir: z.string(),
  kernelRelease: z.string(),
});
export const ImageBuildParamsSchema = z.strictObject({
  name: z.string().min(1).max(64),
});
export const ImageListResultSchema = z.array(ImageInfoSchema);

/** Signals `vm kill --signal` accepts. */
export const KILL_SIGNALS = ["KILL", "TERM", "INT", "HUP", "QUIT"] as const;

export const VmKillParamsSchema = z.strictObject({
  refs: z.array(z.string().min(1).max(128)).min(1).max(256),
  signal: z.enum(KILL_SIGNALS).optional(),
});

export const VmSetParamsSchema = z.strictObject({
  ref: z.string().min(1).max(128),
  vcpu: z.number().int().positive().max(64).optional(),
  memoryMib: z.number().int().positive().max(1024 * 1024).optional(),
});

/** `vm prune`: delete these VMs if they are still not running. */
export const VmPruneParamsSchema = z.strictObject({
  refs: z.array(z.string().min(1).max(128)).max(4096),
});

/** Host-side usage of one VM. */
export const VmStatsSchema = z.strictObject({
  name: z.string(),
  state: VmStateSchema,
  pid: z.number().int().nullable(),
  /** Percent of one CPU over the VMM's lifetime, as ps reports it. */
  cpuPercent: z.number().nullable(),
  rssMib: z.number().nullable(),
  uptimeSeconds: z.number().int().nullable(),
  disks: z.array(z.strictObject({
    file: z.string(),
    sizeMib: z.number(),
    usedMib: z.number(),
  })),
  diskUsedMib: z.number(),
});
export type VmStats = z.infer<typeof VmStatsSchema>;

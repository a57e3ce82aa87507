/**
 * Helper methods for jailed Firecracker VMs. The schemas check shapes; the
 * helper checks every path against banger's own directories and every id
 * against banger's id format before acting.
 *
 * @module
 */
import { z } from "zod";

const id = z.string().min(1).max(64);
const path = z.string().min(1).max(4096);

/** `jail.launch`: stage a chroot for VM `id` and start the jailer in it. */
export const JailLaunchParamsSchema = z.strictObject({
  id,
  kernel: path,
  initrd: path.optional(),
  drives: z.array(z.strictObject({ id: z.string().min(1).max(64), path }))
    .min(1).max(8),
  /** Files of the VM's directory the jail shares (log, metrics, console). */
  log: path,
  metrics: path,
  console: path,
  /** Extra Firecracker flags banger may pass (a fixed set). */
  enablePci: z.boolean(),
});
export type JailLaunchParams = z.infer<typeof JailLaunchParamsSchema>;

export const JailLaunchResultSchema = z.strictObject({
  pid: z.number().int().positive(),
  apiSocket: z.string(),
  root: z.string(),
});
export type JailLaunchResult = z.infer<typeof JailLaunchResultSchema>;

/** `jail.terminate`: by VM id only. */
export const JailIdParamsSchema = z.strictObject({ id });

export const JailDoneResultSchema = z.strictObject({
  id: z.string(),
  removed: z.boolean(),
});

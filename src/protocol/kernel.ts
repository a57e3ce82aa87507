/**
 * Kernel methods of the daemon: importing a guest kernel (for example one
 * built from Firecracker's guest configuration, which needs no initrd) and
 * listing the imported ones.
 *
 * @module
 */
import { z } from "zod";

/** What a kernel name may be, as error messages say it. */
export const KERNEL_NAME_RULE =
  "must be 1 to 63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit";

/** Kernel names: a letter or digit, then letters, digits, `.`, `_`, `-`. */
export const KernelNameSchema = z.string().regex(
  /^[a-z0-9][a-z0-9._-]{0,62}$/,
  { message: KERNEL_NAME_RULE },
);

/**
 * Returns `name` when it is a valid kernel name; throws a RangeError that
 * names the input (as `what`, e.g. `--kernel`) and the rule otherwise.
 */
export function validateKernelName(name: string, what = "kernel name"): string {
  if (!KernelNameSchema.safeParse(name).success) {
    throw new RangeError(
      `Invalid ${what} "${name.slice(0, 64)}": ${KERNEL_NAME_RULE}`,
    );
  }
  return name;
}

/**
 * `kernel.import`: the CLI has copied the files into the owner's state
 * directory (the daemon cannot read arbitrary paths); the daemon moves them
 * into its kernels directory.
 */
export const KernelImportParamsSchema = z.strictObject({
  name: KernelNameSchema,
  vmlinux: z.string().min(1).max(4096),
  initrd: z.string().min(1).max(4096).optional(),
});
export type KernelImportParams = z.infer<typeof KernelImportParamsSchema>;

export const KernelInfoSchema = z.strictObject({
  name: z.string(),
  dir: z.string(),
  initrd: z.boolean(),
  importedAt: z.string(),
});
export type KernelInfo = z.infer<typeof KernelInfoSchema>;

export const KernelListResultSchema = z.array(KernelInfoSchema);

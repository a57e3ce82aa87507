/**
 * Imported guest kernels, kept in `kernels/<name>/` (`vmlinux`, an optional
 * `initrd.img`, `manifest.json`). A VM booted with `--kernel <name>` uses
 * them instead of its image's kernel; without an initrd the VMM boots the
 * kernel straight from the root drive (a kernel built from Firecracker's
 * guest configuration has virtio and ext4 built in).
 *
 * @module
 */
import { join } from "node:path";
import { RpcError } from "../protocol/envelope.ts";
import {
  KERNEL_NAME_RULE,
  type KernelImportParams,
  type KernelInfo,
  KernelInfoSchema,
  KernelNameSchema,
} from "../protocol/kernel.ts";

/** File names inside a kernel's directory. */
export const KERNEL_FILES = {
  vmlinux: "vmlinux",
  initrd: "initrd.img",
  manifest: "manifest.json",
} as const;

/** A kernel a VM can boot. */
export interface Kernel extends KernelInfo {
  vmlinux: string;
  initrdPath: string | undefined;
}

/** Owns the kernels directory. */
export class KernelService {
  constructor(
    readonly kernelsDir: string,
    /** Where the CLI stages files to import; only these may be imported. */
    readonly importDir: string,
  ) {}

  /** Every imported kernel, by name. */
  async list(): Promise<KernelInfo[]> {
    const kernels: KernelInfo[] = [];
    try {
      for await (const entry of Deno.readDir(this.kernelsDir)) {
        if (!entry.isDirectory || entry.name.startsWith(".")) continue;
        const kernel = await this.get(entry.name).catch(() => undefined);
        if (kernel) kernels.push(info(kernel));
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return kernels.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The kernel called `name`; throws `not_found`. */
  async get(name: string): Promise<Kernel> {
    // The name becomes a path: only kernel names, never "../x".
    if (!KernelNameSchema.safeParse(name).success) {
      throw new RpcError(
        "bad_request",
        `Invalid kernel name "${name.slice(0, 64)}": ${KERNEL_NAME_RULE}`,
      );
    }
    const dir = join(this.kernelsDir, name);
    let manifest: KernelInfo;
    try {
      manifest = KernelInfoSchema.parse(JSON.parse(
        await Deno.readTextFile(join(dir, KERNEL_FILES.manifest)),
      ));
    } catch {
      throw new RpcError(
        "not_found",
        `Cannot find kernel "${name}": not imported (see "banger kernel list")`,
      );
    }
    return {
      ...manifest,
      dir,
      vmlinux: join(dir, KERNEL_FILES.vmlinux),
      initrdPath: manifest.initrd ? join(dir, KERNEL_FILES.initrd) : undefined,
    };
  }

  /**
   * Imports the staged files of `params` as kernel `params.name`: checks
   * the vmlinux is an ELF file (what Firecracker boots), moves the files in
   * through a staging directory and a rename, and removes the staged
   * copies. Nothing is left behind on failure.
   */
  async import(params: KernelImportParams): Promise<KernelInfo> {
    const name = params.name;
    const dir = join(this.kernelsDir, name);
    const exists = await Deno.lstat(dir).then(() => true, () => false);
    if (exists) {
      throw new RpcError(
        "already_exists",
        `Cannot import kernel "${name}": a kernel of that name exists`,
      );
    }
    const vmlinux = await this.#staged(params.vmlinux, name);
    const initrd = params.initrd === undefined
      ? undefined
      : await this.#staged(params.initrd, name);
    if (!(await isElf(vmlinux))) {
      throw new RpcError(
        "bad_request",
        `Cannot import kernel "${name}": the vmlinux is not an ELF file (Firecracker boots an uncompressed vmlinux, not a bzImage)`,
      );
    }
    await Deno.mkdir(this.kernelsDir, { recursive: true, mode: 0o700 });
    const staging = join(
      this.kernelsDir,
      `.${name}.staging-${crypto.randomUUID().slice(0, 8)}`,
    );
    try {
      await Deno.mkdir(staging, { mode: 0o700 });
      await Deno.copyFile(vmlinux, join(staging, KERNEL_FILES.vmlinux));
      if (initrd) {
        await Deno.copyFile(initrd, join(staging, KERNEL_FILES.initrd));
      }
      const manifest: KernelInfo = {
        name,
        dir,
        initrd: initrd !== undefined,
        importedAt: new Date().toISOString(),
      };
      await Deno.writeTextFile(
        join(staging, KERNEL_FILES.manifest),
        JSON.stringify(manifest, null, 2) + "\n",
      );
      await Deno.rename(staging, dir);
      return manifest;
    } catch (error) {
      await Deno.remove(staging, { recursive: true }).catch(() => {});
      throw error;
    } finally {
      for (const file of [vmlinux, initrd]) {
        if (file) await Deno.remove(file).catch(() => {});
      }
    }
  }

  /** Checks a staged path is a regular file inside the import directory. */
  async #staged(path: string, name: string): Promise<string> {
    const inside = path.startsWith(`${this.importDir}/`) &&
      !path.split("/").includes("..");
    const file = inside
      ? await Deno.lstat(path).catch(() => undefined)
      : undefined;
    if (!file?.isFile) {
      throw new RpcError(
        "bad_request",
        `Cannot import kernel "${name}": "${
          path.slice(0, 200)
        }" is not a file staged by the CLI in "${this.importDir}"`,
      );
    }
    return path;
  }
}

function info(kernel: Kernel): KernelInfo {
  return {
    name: kernel.name,
    dir: kernel.dir,
    initrd: kernel.initrd,
    importedAt: kernel.importedAt,
  };
}

async function isElf(path: string): Promise<boolean> {
  const file = await Deno.open(path, { read: true });
  try {
    const magic = new Uint8Array(4);
    return (await file.read(magic)) === 4 && magic[0] === 0x7f &&
      magic[1] === 0x45 && magic[2] === 0x4c && magic[3] === 0x46;
  } finally {
    file.close();
  }
}

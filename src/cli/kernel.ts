/**
 * `banger kernel import|list`: guest kernels kept apart from images, such as
 * one built from Firecracker's guest configuration (booted without an
 * initrd), used with `vm run --kernel <name>`.
 *
 * @module
 */
import type { Command } from "commander";
import { basename, join, resolve } from "node:path";
import type { Paths } from "../paths.ts";
import {
  KernelInfoSchema,
  KernelListResultSchema,
  validateKernelName,
} from "../protocol/kernel.ts";
import type { DaemonClient } from "./daemon_client.ts";
import { note, out } from "./output.ts";

/** Adds the `kernel` commands to `program`. */
export function addKernelCommands(
  program: Command,
  daemon: DaemonClient,
  paths: Paths,
): void {
  const kernel = program.command("kernel").description(
    "import and list guest kernels booted instead of an image's own",
  );
  kernel.command("import")
    .description(
      "Import an uncompressed ELF vmlinux (for example one built from\n" +
        "Firecracker's guest configuration, which needs no initrd), then boot\n" +
        "it with: banger vm run --kernel <name> …",
    )
    .argument("<name>", "kernel name (a-z, 0-9, '.', '_', '-')")
    .argument("<vmlinux>", "path to the ELF vmlinux")
    .option("--initrd <file>", "an initrd to boot it with (Debian kernels)")
    .option("--json", "print JSON")
    .action(
      async (
        name: string,
        vmlinux: string,
        flags: { initrd?: string; json?: boolean },
      ) => {
        validateKernelName(name);
        // The daemon reads only its own directories and the owner's state,
        // so the files are staged there first.
        const staging = join(
          paths.userStateDir,
          "import",
          crypto.randomUUID().slice(0, 8),
        );
        await Deno.mkdir(staging, { recursive: true, mode: 0o700 });
        try {
          const staged = await stage(vmlinux, staging, "--vmlinux");
          const initrd = flags.initrd === undefined
            ? undefined
            : await stage(flags.initrd, staging, "--initrd");
          const info = await daemon.call(
            "kernel.import",
            { name, vmlinux: staged, ...(initrd ? { initrd } : {}) },
            KernelInfoSchema,
          );
          if (flags.json) out(JSON.stringify(info, null, 2) + "\n");
          else {
            note(
              `banger: imported kernel "${info.name}"${
                info.initrd ? " with an initrd" : " (no initrd)"
              }; boot it with: banger vm run --kernel ${info.name}`,
            );
          }
        } finally {
          await Deno.remove(staging, { recursive: true }).catch(() => {});
        }
      },
    );
  kernel.command("list").alias("ls").description("list imported kernels")
    .option("--json", "print JSON")
    .action(async (flags: { json?: boolean }) => {
      const kernels = await daemon.call(
        "kernel.list",
        {},
        KernelListResultSchema,
      );
      if (flags.json) {
        out(JSON.stringify(kernels, null, 2) + "\n");
        return;
      }
      for (const k of kernels) {
        out(`${k.name}  ${k.initrd ? "initrd" : "no-initrd"}  ${k.dir}\n`);
      }
    });
}

async function stage(path: string, dir: string, what: string) {
  const source = resolve(path);
  const info = await Deno.stat(source).catch(() => undefined);
  if (!info?.isFile) {
    throw new RangeError(`Invalid ${what} "${path}": not a file`);
  }
  const target = join(dir, basename(source));
  await Deno.copyFile(source, target);
  return target;
}

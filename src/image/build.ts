/**
 * Builds the golden Debian image: mmdebstrap into a directory, banger's guest
 * files added by a customize hook, then `rootfs.ext4` made with
 * `mkfs.ext4 -d` (no mount), the ELF kernel extracted from the package's
 * bzImage and the small initrd copied out.
 *
 * Results are cached by recipe hash under the cache directory; a build of the
 * same recipe in another process waits on a file lock and then reuses it.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { mountsUnder, readMounts } from "../util/mountinfo.ts";
import { run } from "../util/exec.ts";
import { hostDebianMirrors } from "./apt_sources.ts";
import {
  GUEST_FSTAB,
  GUEST_INIT_SCRIPT,
  GUEST_INIT_UNIT,
  GUEST_SSHD_CONFIG,
  INITRAMFS_CONF,
  INITRAMFS_MODULES,
  MASKED_UNITS,
  ROOT_LABEL,
} from "./guest_files.ts";
import { extractVmlinux } from "./vmlinux.ts";

/** Bump when the recipe changes in a way the hash below cannot see. */
const RECIPE_VERSION = 3;
/** Apparent size of the image's root filesystem (sparse; grows in qcow2). */
export const ROOTFS_SIZE = "4G";
/** Files every built image directory holds. */
export const IMAGE_FILES = {
  rootfs: "rootfs.ext4",
  kernel: "vmlinux",
  initrd: "initrd.img",
  rootSkeleton: "root-skel",
  manifest: "manifest.json",
} as const;

/** What a golden image is made of. */
export interface Recipe {
  name: string;
  suite: string;
  packages: string[];
}

/** The recipes banger knows how to build. */
export const RECIPES: Record<string, Recipe> = {
  "debian-bookworm": {
    name: "debian-bookworm",
    suite: "bookworm",
    packages: [
      "systemd-sysv",
      "udev",
      "kmod",
      "openssh-server",
      "git",
      "ca-certificates",
      "iproute2",
      "curl",
      "jq",
      "make",
      "build-essential",
      "procps",
      "e2fsprogs",
      "initramfs-tools",
      "linux-image-cloud-amd64",
    ],
  },
};

/** The manifest written next to a built image. */
export interface ImageManifest {
  name: string;
  distro: string;
  arch: string;
  kernelRelease: string;
  recipeHash: string;
  builtAt: string;
}

/** Options for {@linkcode buildImage}. */
export interface BuildOptions {
  cacheDir: string;
  mirror?: string | undefined;
  securityMirror?: string | undefined;
  onProgress?: (detail: string) => void;
}

/** Hash of everything that changes the built image. */
export function recipeHash(recipe: Recipe): string {
  const hash = createHash("sha256");
  hash.update(JSON.stringify({ v: RECIPE_VERSION, recipe }));
  for (
    const text of [
      GUEST_INIT_SCRIPT,
      GUEST_INIT_UNIT,
      GUEST_FSTAB,
      GUEST_SSHD_CONFIG,
      INITRAMFS_CONF,
      INITRAMFS_MODULES,
      MASKED_UNITS.join(","),
    ]
  ) hash.update(text);
  return hash.digest("hex").slice(0, 16);
}

/**
 * Returns the directory of a built image for `recipe`, building it first
 * when the cache has none.
 *
 * Requires root or unprivileged user namespaces (mmdebstrap picks), and
 * `--allow-run` for mmdebstrap, mkfs.ext4, cp and the kernel decompressor.
 */
export async function buildImage(
  recipe: Recipe,
  options: BuildOptions,
): Promise<string> {
  const progress = options.onProgress ?? (() => {});
  const hash = recipeHash(recipe);
  const imagesCache = join(options.cacheDir, "images");
  await Deno.mkdir(imagesCache, { recursive: true });
  const finalDir = join(imagesCache, `${recipe.name}-${hash}`);
  if (await exists(join(finalDir, IMAGE_FILES.manifest))) return finalDir;

  // Another process (another daemon sharing this cache) may be building the
  // same recipe: the lock makes it wait, then it finds the finished result.
  const lock = await Deno.open(join(imagesCache, `${recipe.name}.lock`), {
    create: true,
    write: true,
  });
  try {
    // Only a lock that is really held by another build is worth a word.
    const locked = lock.lock(true);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const free = await Promise.race([
      locked.then(() => true),
      new Promise<false>((r) => timer = setTimeout(() => r(false), 200)),
    ]);
    clearTimeout(timer);
    if (!free) {
      progress(`waiting for another build of "${recipe.name}" to finish`);
      await locked;
    }
    if (await exists(join(finalDir, IMAGE_FILES.manifest))) return finalDir;
    // Work directories of builds whose process died: with the lock held no
    // build of this name runs, and mmdebstrap dies with its daemon.
    await removeStaleBuilds(imagesCache, recipe.name);
    const workDir = await Deno.makeTempDir({
      dir: imagesCache,
      prefix: `.build-${recipe.name}-`,
    });
    let failure: unknown;
    try {
      await buildInto(recipe, hash, workDir, options, progress);
      await Deno.rename(join(workDir, "out"), finalDir);
    } catch (error) {
      failure = error;
    }
    try {
      await removeBuildDir(workDir);
    } catch (error) {
      if (failure === undefined) throw error;
      failure = new Error(
        `${(failure as Error).message}; ${(error as Error).message}`,
      );
    }
    if (failure !== undefined) throw failure;
    return finalDir;
  } finally {
    lock.close();
  }
}

async function removeStaleBuilds(cache: string, name: string): Promise<void> {
  for await (const entry of Deno.readDir(cache)) {
    if (entry.isDirectory && entry.name.startsWith(`.build-${name}-`)) {
      await removeBuildDir(join(cache, entry.name));
    }
  }
}

/**
 * Removes a build's work directory, unless something is mounted inside
 * it: a bootstrap killed before it unmounted /proc, /sys or /dev/shm would
 * otherwise have the recursive delete walk into the host's filesystems.
 */
export async function removeBuildDir(dir: string): Promise<void> {
  const mounted = mountsUnder(await readMounts(), dir);
  if (mounted.length > 0) {
    throw new Error(
      `Cannot remove image build directory "${dir}": "${
        mounted[0]!.mountPoint
      }" is still mounted inside it; unmount it (umount -R) and retry`,
    );
  }
  await Deno.remove(dir, { recursive: true });
}

async function buildInto(
  recipe: Recipe,
  hash: string,
  workDir: string,
  options: BuildOptions,
  progress: (detail: string) => void,
): Promise<void> {
  const tree = join(workDir, "rootfs");
  const hooks = join(workDir, "hooks");
  const out = join(workDir, "out");
  await Deno.mkdir(out);
  await writeHooks(hooks);

  const mirrors = await resolveMirrors(recipe.suite, options);
  progress(`bootstrapping Debian ${recipe.suite} with mmdebstrap`);
  await streamed(
    "mmdebstrap",
    "setpriv",
    [
      // A build never outlives the daemon that asked for it: a dead daemon
      // leaves no download writing into the cache.
      "--pdeathsig",
      "KILL",
      "--",
      // As root, mmdebstrap mounts /proc, /sys and /dev/shm into the tree
      // and runs apt and dpkg as its children. In a mount namespace of its
      // own those mounts end with it, however it ends; in a PID namespace
      // of its own, its children end with it too (the namespace's first
      // process gets KILL when unshare dies, and takes the rest along).
      // TODO: unprivileged, mmdebstrap makes its own namespaces, and its
      // children can outlive a killed daemon by a few seconds.
      ...((Deno.uid() ?? 0) === 0
        ? [
          "unshare",
          "--pid",
          "--fork",
          "--kill-child=KILL",
          "--mount",
          "--propagation",
          "private",
          "--",
        ]
        : []),
      "mmdebstrap",
      "--variant=minbase",
      `--include=${recipe.packages.join(",")}`,
      `--hook-directory=${hooks}`,
      "--skip=output/dev",
      recipe.suite,
      tree,
      ...mirrors,
    ],
    (line) => {
      const info = line.match(/^I: (.*)$/)?.[1];
      if (info) progress(info);
    },
  );

  progress("extracting kernel and initrd");
  const boot = [...Deno.readDirSync(join(tree, "boot"))].map((e) => e.name);
  const vmlinuz = boot.find((n) => n.startsWith("vmlinuz-"));
  const initrd = boot.find((n) => n.startsWith("initrd.img-"));
  if (!vmlinuz || !initrd) {
    throw new Error(
      `Cannot build image "${recipe.name}": the root filesystem has no kernel or initrd in /boot`,
    );
  }
  const kernelRelease = vmlinuz.slice("vmlinuz-".length);
  await extractVmlinux(
    join(tree, "boot", vmlinuz),
    join(out, IMAGE_FILES.kernel),
  );
  await Deno.copyFile(
    join(tree, "boot", initrd),
    join(out, IMAGE_FILES.initrd),
  );

  // /root becomes each VM's work disk; the image keeps its skeleton so the
  // work disk can be seeded from it without mounting anything.
  await run("cp", [
    "-a",
    join(tree, "root"),
    join(out, IMAGE_FILES.rootSkeleton),
  ]);

  progress("writing rootfs.ext4");
  await run("mkfs.ext4", [
    "-q",
    "-F",
    "-L",
    ROOT_LABEL,
    "-d",
    tree,
    join(out, IMAGE_FILES.rootfs),
    ROOTFS_SIZE,
  ]);
  const manifest: ImageManifest = {
    name: recipe.name,
    distro: `debian-${recipe.suite}`,
    arch: "x86_64",
    kernelRelease,
    recipeHash: hash,
    builtAt: new Date().toISOString(),
  };
  await Deno.writeTextFile(
    join(out, IMAGE_FILES.manifest),
    JSON.stringify(manifest, null, 2) + "\n",
  );
  await Deno.remove(tree, { recursive: true });
}

/** mmdebstrap's mirror arguments: the configured ones, else the host's. */
async function resolveMirrors(
  suite: string,
  options: BuildOptions,
): Promise<string[]> {
  const host = await hostDebianMirrors();
  const main = options.mirror ?? host.main;
  const security = options.securityMirror ?? host.security;
  // Without any mirror mmdebstrap uses its built-in default, which adds the
  // updates and security suites by itself.
  if (!main) return [];
  const lines = [
    `deb ${main} ${suite} main`,
    `deb ${main} ${suite}-updates main`,
  ];
  if (security) lines.push(`deb ${security} ${suite}-security main`);
  return lines;
}

async function writeHooks(dir: string): Promise<void> {
  const overlay = join(dir, "overlay");
  const files: Record<string, string> = {
    "etc/fstab": GUEST_FSTAB,
    "etc/systemd/system/banger-guest.service": GUEST_INIT_UNIT,
    "usr/local/sbin/banger-guest-init": GUEST_INIT_SCRIPT,
    "etc/ssh/sshd_config.d/banger.conf": GUEST_SSHD_CONFIG,
    "etc/initramfs-tools/conf.d/banger.conf": INITRAMFS_CONF,
    "etc/initramfs-tools/modules": INITRAMFS_MODULES,
    "etc/hostname": "banger\n",
  };
  for (const [path, text] of Object.entries(files)) {
    const target = join(overlay, path);
    await Deno.mkdir(join(target, ".."), { recursive: true });
    await Deno.writeTextFile(target, text);
  }
  await Deno.chmod(join(overlay, "usr/local/sbin/banger-guest-init"), 0o755);
  // mmdebstrap runs every executable named customize* in the hook
  // directory with the root directory as $1, after all packages are in.
  const hook = join(dir, "customize50-banger");
  await Deno.writeTextFile(hook, CUSTOMIZE_HOOK);
  await Deno.chmod(hook, 0o755);
}

/** Customize hook: static text, no values interpolated into it. */
const CUSTOMIZE_HOOK = `#!/bin/sh
set -eu
root="$1"
here=$(dirname "$0")
cp -a "$here/overlay/." "$root/"
systemctl --root="$root" enable banger-guest.service
systemctl --root="$root" mask ${MASKED_UNITS.join(" ")}
systemctl --root="$root" set-default multi-user.target
rm -f "$root"/etc/ssh/ssh_host_*
chroot "$root" update-initramfs -u -k all
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
`;

/**
 * Runs `program` with `args`, handing each output line to `onLine`; throws
 * naming `what` (the program the user knows of) with the last lines.
 */
async function streamed(
  what: string,
  program: string,
  args: string[],
  onLine: (line: string) => void,
): Promise<void> {
  const child = new Deno.Command(program, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const tail: string[] = [];
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    let buffered = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) {
        tail.push(line);
        if (tail.length > 20) tail.shift();
        onLine(line);
      }
    }
  };
  const [status] = await Promise.all([
    child.status,
    pump(child.stdout),
    pump(child.stderr),
  ]);
  if (!status.success) {
    throw new Error(
      `Command "${what}" failed with exit status ${status.code}:\n${
        tail.join("\n")
      }`,
    );
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

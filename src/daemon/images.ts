/**
 * The image service: makes sure a named image exists in banger's state,
 * building it (or taking it from the build cache) on first use. Concurrent
 * requests for the same missing image share one build.
 *
 * @module
 */
import { join } from "node:path";
import { RpcError } from "../protocol/envelope.ts";
import {
  buildImage,
  IMAGE_FILES,
  type ImageManifest,
  RECIPES,
} from "../image/build.ts";
import type { StateDb } from "./db.ts";

/** A ready image and the files a VM boots from. */
export interface Image {
  id: string;
  name: string;
  dir: string;
  rootfs: string;
  kernel: string;
  initrd: string;
  rootSkeleton: string;
  kernelRelease: string;
}

/** Options of {@linkcode ImageService}. */
export interface ImageServiceOptions {
  db: StateDb;
  /** Builds a recipe into the cache; tests replace it. */
  build?: typeof buildImage;
  imagesDir: string;
  cacheDir: string;
  mirror?: string | undefined;
  securityMirror?: string | undefined;
}

/** Owns the images table and the images directory. */
export class ImageService {
  #pending = new Map<string, Promise<Image>>();
  constructor(private readonly options: ImageServiceOptions) {}

  /** Every ready image. */
  list(): Image[] {
    return this.options.db.listImages().map((row) =>
      imageAt(row.id, row.name, row.dir, row.kernel_release)
    );
  }

  /** The image called `name`, if it is ready. */
  get(name: string): Image | undefined {
    const row = this.options.db.imageByName(name);
    if (!row) return undefined;
    return imageAt(row.id, row.name, row.dir, row.kernel_release);
  }

  /**
   * Throws `not_found` unless image `name` is built or banger can build it:
   * checked before a VM is created, so that a wrong `--image` makes
   * nothing.
   */
  check(name: string): void {
    if (this.get(name) || RECIPES[name]) return;
    throw unknownImage(name);
  }

  /**
   * Returns the image called `name`, building it first when missing.
   * Throws `not_found` for a name banger has no recipe for.
   */
  ensure(name: string, progress: (detail: string) => void): Promise<Image> {
    const ready = this.get(name);
    if (ready) return Promise.resolve(ready);
    const pending = this.#pending.get(name);
    if (pending) {
      progress("waiting for a build of the same image");
      return pending;
    }
    const recipe = RECIPES[name];
    if (!recipe) return Promise.reject(unknownImage(name));
    const build = (async () => {
      const build = this.options.build ?? buildImage;
      const cached = await build(recipe, {
        cacheDir: this.options.cacheDir,
        mirror: this.options.mirror,
        securityMirror: this.options.securityMirror,
        onProgress: progress,
      });
      return await this.#install(name, cached);
    })().finally(() => this.#pending.delete(name));
    this.#pending.set(name, build);
    return build;
  }

  /**
   * Links a cached build into the images directory (hard links: same
   * filesystem, no copy) and records it.
   */
  async #install(name: string, cached: string): Promise<Image> {
    const manifest = JSON.parse(
      await Deno.readTextFile(join(cached, IMAGE_FILES.manifest)),
    ) as ImageManifest;
    const id = `${name}-${manifest.recipeHash}`;
    const dir = join(this.options.imagesDir, id);
    const staging = `${dir}.staging-${crypto.randomUUID().slice(0, 8)}`;
    await Deno.mkdir(staging, { recursive: true });
    try {
      for (
        const file of [
          IMAGE_FILES.rootfs,
          IMAGE_FILES.kernel,
          IMAGE_FILES.initrd,
          IMAGE_FILES.manifest,
        ]
      ) {
        await linkOrCopy(join(cached, file), join(staging, file));
      }
      await copyTree(
        join(cached, IMAGE_FILES.rootSkeleton),
        join(staging, IMAGE_FILES.rootSkeleton),
      );
      // The image's root filesystem is never written: every VM gets a
      // copy-on-write layer over it.
      await Deno.chmod(join(staging, IMAGE_FILES.rootfs), 0o444);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await Deno.rename(staging, dir);
    } catch (error) {
      await Deno.remove(staging, { recursive: true }).catch(() => {});
      throw error;
    }
    this.options.db.insertImage({
      id,
      name,
      dir,
      kernel_release: manifest.kernelRelease,
      created_at: new Date().toISOString(),
    });
    return imageAt(id, name, dir, manifest.kernelRelease);
  }
}

function imageAt(
  id: string,
  name: string,
  dir: string,
  kernelRelease: string,
): Image {
  return {
    id,
    name,
    dir,
    rootfs: join(dir, IMAGE_FILES.rootfs),
    kernel: join(dir, IMAGE_FILES.kernel),
    initrd: join(dir, IMAGE_FILES.initrd),
    rootSkeleton: join(dir, IMAGE_FILES.rootSkeleton),
    kernelRelease,
  };
}

async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await Deno.link(from, to);
  } catch {
    // Another filesystem (the cache may live elsewhere): copy instead.
    await Deno.copyFile(from, to);
  }
}

async function copyTree(from: string, to: string): Promise<void> {
  const info = await Deno.lstat(from);
  if (info.isDirectory) {
    await Deno.mkdir(to, { mode: info.mode ?? 0o755 });
    for await (const entry of Deno.readDir(from)) {
      await copyTree(join(from, entry.name), join(to, entry.name));
    }
    await Deno.chmod(to, (info.mode ?? 0o755) & 0o7777);
  } else if (info.isSymlink) {
    await Deno.symlink(await Deno.readLink(from), to);
  } else {
    await Deno.copyFile(from, to);
  }
}

function unknownImage(name: string): RpcError {
  return new RpcError(
    "not_found",
    `Cannot find image "${name}": not built, and banger has no recipe for it (known: ${
      Object.keys(RECIPES).join(", ")
    })`,
  );
}

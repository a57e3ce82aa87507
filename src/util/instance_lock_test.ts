import { deepStrictEqual } from "node:assert/strict";

const MODULE = new URL("./instance_lock.ts", import.meta.url).href;

/** A process that tries the lock, prints the outcome, then holds it a while. */
function contender(path: string, holdMs: number): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `const { acquireInstanceLock } = await import(${JSON.stringify(MODULE)});
       const f = await acquireInstanceLock(${JSON.stringify(path)}, 500);
       console.log(f ? "held" : "refused");
       if (f) await new Promise((r) => setTimeout(r, ${holdMs}));
       Deno.exit(0);`,
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
}

async function firstLine(child: Deno.ChildProcess): Promise<string> {
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  return new TextDecoder().decode(value).trim();
}

Deno.test("acquireInstanceLock() admits one process at a time", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/daemon.lock`;
  const holder = contender(path, 60_000);
  deepStrictEqual(await firstLine(holder), "held");

  const second = contender(path, 0);
  deepStrictEqual(await firstLine(second), "refused");
  await second.status;
  await second.stdout.cancel();

  // The holder's death releases the lock for the next process.
  holder.kill("SIGKILL");
  await holder.status;
  await holder.stdout.cancel();
  const third = contender(path, 0);
  deepStrictEqual(await firstLine(third), "held");
  await third.status;
  await third.stdout.cancel();
  await Deno.remove(dir, { recursive: true });
});

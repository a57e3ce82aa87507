/**
 * Worker entry: runs one role with the permissions main.ts gave the worker,
 * and the messages between the two threads.
 *
 * @module
 */
import type { Launcher, Role } from "./roles.ts";

/** The message main.ts sends to start a role. */
export interface RoleStart {
  kind: "start";
  role: Role;
  args: string[];
  launcher: Launcher;
}

/**
 * The background services the CLI may ask the main thread to start. The
 * CLI's own permissions cannot start a program in a new session (that
 * would need `setsid`, which runs anything), so the main thread, which
 * holds the union of permissions, starts exactly these and nothing else.
 */
export type Service =
  | { role: "daemon" }
  | { role: "helper"; ownerUid: number };

/** The worker asks the main thread to start a service. */
export interface SpawnRequest {
  kind: "spawn";
  id: number;
  service: Service;
}

/** The main thread's answer to a {@linkcode SpawnRequest}. */
export interface SpawnReply {
  kind: "spawned";
  id: number;
  error?: string;
}

/** The message the worker sends back when the role is done. */
export interface WorkerExit {
  kind: "exit";
  code: number;
}

/** Messages from the worker to the main thread. */
export type FromWorker = SpawnRequest | WorkerExit;

declare const self: {
  onmessage: ((event: MessageEvent<RoleStart | SpawnReply>) => void) | null;
  postMessage(message: FromWorker): void;
};

const pending = new Map<number, PromiseWithResolvers<void>>();
let nextId = 1;

/**
 * Asks the main thread to start `service` in the background, detached from
 * this terminal; resolves once it was started. Only for the CLI role.
 */
export function startService(service: Service): Promise<void> {
  const id = nextId++;
  const reply = Promise.withResolvers<void>();
  pending.set(id, reply);
  self.postMessage({ kind: "spawn", id, service });
  return reply.promise;
}

self.onmessage = async (event) => {
  const message = event.data;
  if (message.kind === "spawned") {
    const reply = pending.get(message.id);
    pending.delete(message.id);
    if (message.error === undefined) reply?.resolve();
    else reply?.reject(new Error(message.error));
    return;
  }
  const { role, args, launcher } = message;
  let code = 1;
  try {
    if (role === "daemon") {
      const { daemonMain } = await import("./daemon/main.ts");
      code = await daemonMain(args.slice(1));
    } else if (role === "helper") {
      const { helperMain } = await import("./helper/main.ts");
      code = await helperMain(args.slice(1));
    } else {
      const { cliMain } = await import("./cli/main.ts");
      code = await cliMain(args, launcher);
    }
  } catch (error) {
    console.error(`banger: ${error instanceof Error ? error.message : error}`);
    code = 1;
  }
  self.postMessage({ kind: "exit", code });
};

import assert from "node:assert/strict";
import { join } from "node:path";
import { apiCall, encodeRequest, FirecrackerApiError } from "./api.ts";

/**
 * Serves a Firecracker-like API at a socket path longer than sun_path
 * allows (bound short, then moved), reachable through a short symlink,
 * which is how the driver reaches a jailed Firecracker.
 */
async function longPathServer(
  handler: (request: Request) => Response | Promise<Response>,
) {
  const dir = await Deno.makeTempDir({ prefix: "fc-api-" });
  const deep = join(dir, "jail/firecracker/0123456789ab/root", "x".repeat(80));
  await Deno.mkdir(deep, { recursive: true });
  const short = join(dir, "s.sock");
  const server = Deno.serve({ path: short, onListen() {} }, handler);
  const long = join(deep, "firecracker.socket");
  await Deno.rename(short, long);
  const link = join(dir, "2.sock");
  await Deno.symlink(long, link);
  return {
    long,
    link,
    async close() {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("apiCall() reaches a socket past 108 bytes through a symlink", async () => {
  const seen: string[] = [];
  const server = await longPathServer(async (request) => {
    seen.push(
      `${request.method} ${new URL(request.url).pathname} ${await request
        .text()}`,
    );
    return request.method === "GET"
      ? Response.json({ state: "Not started" })
      : new Response(null, { status: 204 });
  });
  try {
    assert.ok(new TextEncoder().encode(server.long).byteLength > 108);
    const info = await apiCall(server.link, { method: "GET", path: "/" });
    assert.deepEqual(info, { status: 200, body: { state: "Not started" } });
    const put = await apiCall(server.link, {
      method: "PUT",
      path: "/machine-config",
      body: { vcpu_count: 2, mem_size_mib: 512 },
    });
    assert.equal(put.status, 204);
    assert.deepEqual(seen, [
      "GET / ",
      'PUT /machine-config {"vcpu_count":2,"mem_size_mib":512}',
    ]);
  } finally {
    await server.close();
  }
});

Deno.test("apiCall() surfaces Firecracker's fault_message", async () => {
  const server = await longPathServer(() =>
    Response.json(
      { fault_message: "The kernel file cannot be opened: No such file" },
      { status: 400 },
    )
  );
  try {
    await assert.rejects(
      apiCall(server.link, {
        method: "PUT",
        path: "/boot-source",
        body: { kernel_image_path: "/nope" },
      }),
      (error: unknown) => {
        assert.ok(error instanceof FirecrackerApiError);
        assert.equal(error.status, 400);
        assert.equal(
          error.faultMessage,
          "The kernel file cannot be opened: No such file",
        );
        assert.match(error.message, /PUT \/boot-source \(HTTP 400\)/);
        return true;
      },
    );
  } finally {
    await server.close();
  }
});

Deno.test("encodeRequest() sends a JSON body with its length", () => {
  const text = new TextDecoder().decode(
    encodeRequest({
      method: "PUT",
      path: "/actions",
      body: { action_type: "InstanceStart" },
    }),
  );
  assert.match(text, /^PUT \/actions HTTP\/1\.1\r\n/);
  assert.match(text, /\r\nContent-Length: 31\r\n/);
  assert.ok(text.endsWith('\r\n\r\n{"action_type":"InstanceStart"}'));
});

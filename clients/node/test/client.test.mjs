// @modelconfig/client against a live daemon: one behaviour per test, errors asserted by code,
// reason and metadata.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  EtagMismatch,
  FailedPrecondition,
  InvalidArgument,
  ModelConfigError,
  Scope,
  Unauthenticated,
  Unavailable,
  createClient,
} from "../dist/index.js";
import { startDaemon } from "./daemon.mjs";

const byName = (name) => ({ case: "modelName", value: name });

describe("a client of a live daemon", () => {
  let daemon;
  let client;

  before(async () => {
    daemon = await startDaemon();
    client = createClient(daemon.address, { timeoutMs: 10_000 });
  });

  after(async () => {
    client?.close();
    await daemon?.stop();
  });

  test("resolves an account to a model in every slot", async () => {
    const reply = await client.resolveForAccount({ accountId: "acme" });
    const models = Object.fromEntries(reply.slots.map((s) => [s.slot, s.model?.modelName]));
    assert.equal(reply.accountId, "acme");
    assert.equal(models.openai_model, "gpt-4o-mini");
    assert.deepEqual(Object.keys(models).sort(), [
      "anthropic_model",
      "dalle_model",
      "openai_model",
      "runware_model",
    ]);
    assert.match(reply.etag, /^a\d+$/);
    assert.equal(typeof reply.revision, "bigint");
  });

  test("a global write without its scope is INVALID_ARGUMENT SCOPE_REQUIRED", async () => {
    const refused = await client
      .setModel({ slot: "openai_model", modelRef: byName("gpt-3.5-turbo") })
      .then(() => assert.fail("SetModel without a scope succeeded"), (error) => error);
    assert.ok(refused instanceof InvalidArgument);
    assert.ok(refused instanceof ModelConfigError);
    assert.equal(refused.code, "INVALID_ARGUMENT");
    assert.equal(refused.reason, "SCOPE_REQUIRED");
    assert.equal(refused.metadata.field, "scope");
    assert.deepEqual(
      refused.fieldViolations.map((v) => v.field),
      ["scope"],
    );
    assert.match(refused.message, /^scope: is required when account_id is empty/);
  });

  test("a model of another provider is FAILED_PRECONDITION PROVIDER_MISMATCH", async () => {
    const refused = await client
      .setModel({
        slot: "openai_model",
        modelRef: byName("claude-3-haiku-20240307"),
        accountId: "acme",
      })
      .then(() => assert.fail("SetModel of an anthropic model succeeded"), (error) => error);
    assert.ok(refused instanceof FailedPrecondition);
    assert.equal(refused.code, "FAILED_PRECONDITION");
    assert.equal(refused.reason, "PROVIDER_MISMATCH");
    assert.equal(refused.metadata.model_provider, "anthropic");
    assert.equal(refused.metadata.required_provider, "openai");
    assert.equal(refused.metadata.slot, "openai_model");
    assert.deepEqual(
      refused.violations.map((v) => v.type),
      ["PROVIDER"],
    );
  });

  test("a stale etag is ABORTED, an EtagMismatch", async () => {
    const { etag } = await client.resolveForAccount({ accountId: "etag-account" });
    const write = (model) =>
      client.setModel({ slot: "openai_model", modelRef: byName(model), accountId: "etag-account", etag });
    await write("gpt-5-mini");
    await assert.rejects(write("gpt-5-nano"), (error) => {
      assert.ok(error instanceof EtagMismatch);
      assert.equal(error.code, "ABORTED");
      return true;
    });
  });

  test("request metadata is sent: the change reason is recorded", async () => {
    await client.setModel(
      { slot: "anthropic_model", modelRef: byName("claude-3-haiku-20240307"), scope: Scope.GLOBAL },
      { headers: { "x-change-reason": "cheaper images" } },
    );
    const { changes } = await client.listChanges({ slot: "anthropic_model", pageSize: 1 });
    assert.equal(changes[0].reason, "cheaper images");
  });

  test("importOverrides streams requests from an async iterable", async () => {
    async function* requests() {
      yield { rows: [{ line: 2n, accountId: "i1", slot: "openai_model", modelRef: byName("gpt-5-nano") }] };
      yield { rows: [{ line: 3n, accountId: "i2", slot: "openai_model", modelRef: byName("gpt-5-mini") }] };
    }
    const reply = await client.importOverrides(requests());
    assert.equal(reply.rows, 2n);
    assert.equal(reply.accounts, 2n);
    const resolved = await client.resolveForAccount({ accountId: "i2" });
    assert.equal(resolved.slots.find((s) => s.slot === "openai_model").model.modelName, "gpt-5-mini");
  });

  test("importOverrides takes an array, and a refused import names its line", async () => {
    const rows = [{ line: 7n, accountId: "i3", slot: "openai_model", modelRef: byName("dall-e-3") }];
    await assert.rejects(client.importOverrides([{ rows }]), (error) => {
      assert.ok(error instanceof FailedPrecondition);
      assert.equal(error.reason, "MODEL_TYPE_MISMATCH");
      assert.equal(error.metadata.line, "7");
      return true;
    });
  });

  test("watchChanges is an async iterator; breaking out cancels the call", async () => {
    const { revision } = await client.resolveForAccount({ accountId: "watcher" });
    await client.setModel({ slot: "openai_model", modelRef: byName("gpt-5-mini"), accountId: "watcher" });
    const changes = client.watchChanges({ startRevision: revision });
    let first;
    for await (const response of changes) {
      first = response;
      break;
    }
    assert.equal(first.changes[0].accountId, "watcher");
    assert.equal(first.changes[0].revision, revision + 1n);
    assert.deepEqual(await changes.next(), { done: true, value: undefined });
  });

  test("a broken-off watch frees its stream: more watches than the daemon serves at once", async () => {
    // The daemon serves at most 200 streams at once and refuses one more (RESOURCE_EXHAUSTED),
    // so 210 watches in a row pass only if each one left early was cancelled.
    for (let i = 0; i < 210; i++) {
      for await (const response of client.watchChanges({})) {
        assert.ok(response.revision > 0n);
        break;
      }
    }
  });

  test("a call's own deadline ends a watch with DEADLINE_EXCEEDED, an Unavailable", async () => {
    const watch = async () => {
      for await (const _ of client.watchChanges({}, { timeoutMs: 300 })) {
        // the first response comes at once, the next heartbeat only after 5 s
      }
    };
    await assert.rejects(watch(), (error) => {
      assert.ok(error instanceof Unavailable);
      assert.equal(error.code, "DEADLINE_EXCEEDED");
      return true;
    });
  });

  test("exportConfiguration streams the whole configuration to its end", async () => {
    const parts = [];
    for await (const part of client.exportConfiguration()) parts.push(part);
    const models = parts[0].configuration.models.map((m) => m.modelName);
    assert.ok(models.includes("gpt-4o-mini"));
    const overrides = parts.flatMap((p) => p.overrides);
    assert.equal(BigInt(overrides.length), parts[0].overrideCount);
  });

  test("applyConfiguration takes the exported configuration back, changing nothing", async () => {
    const parts = [];
    for await (const part of client.exportConfiguration()) parts.push(part);
    const requests = [
      { configuration: parts[0].configuration, replaceOverrides: true, expectedRevision: parts[0].revision },
      ...parts.filter((p) => p.overrides.length).map((p) => ({ overrides: p.overrides })),
    ];
    const reply = await client.applyConfiguration(requests);
    assert.deepEqual(reply.modelsCreated, []);
    assert.deepEqual(reply.modelsUpdated, []);
    assert.equal(reply.overridesChanged, 0n);
    assert.equal(reply.revision, parts[0].revision);
  });
});

describe("a daemon with tokens", () => {
  let daemon;

  before(async () => {
    daemon = await startDaemon({ tokens: { "node-writer": ["writer", "s3cret-node-token"] } });
  });

  after(async () => daemon?.stop());

  test("a call without a token is UNAUTHENTICATED", async () => {
    const client = createClient(daemon.address);
    try {
      await assert.rejects(client.resolveForAccount({ accountId: "acme" }), (error) => {
        assert.ok(error instanceof Unauthenticated);
        assert.equal(error.code, "UNAUTHENTICATED");
        return true;
      });
    } finally {
      client.close();
    }
  });

  test("the token is sent as a bearer token: its caller is the change's actor", async () => {
    const client = createClient(daemon.address, { token: "s3cret-node-token" });
    try {
      await client.setModel({ slot: "openai_model", modelRef: byName("gpt-5-mini"), accountId: "acme" });
      const { changes } = await client.listChanges({ accountId: "acme", pageSize: 1 });
      assert.equal(changes[0].actor, "node-writer");
    } finally {
      client.close();
    }
  });
});

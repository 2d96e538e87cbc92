#!/usr/bin/env node
// The TypeScript conformance runner: plays one scenario (tests/conformance/README.md) through
// @modelconfig/client's createClient, the way tests/conformance/runner.py does for Python.
//
//   node conformance.mjs --target 127.0.0.1:50051 --scenario ../../tests/conformance/scenarios/scopes.json
//
// Prints one line per failed step and exits 1 if any failed, 0 if all passed. Needs the build
// (`npm run build`, which `make install` runs): it imports ./dist.

import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { parseArgs } from "node:util";

import { fromJson, toJson } from "@bufbuild/protobuf";

import { ModelConfigError, ModelConfigService, createClient } from "./dist/index.js";

const SAVED = /\$\{(\w+)\}/g;
const METHODS = new Map(ModelConfigService.methods.map((m) => [m.name, m]));

/** `${name}` in any string replaced by a saved value. */
function substitute(value, saved) {
  if (typeof value === "string") {
    return value.replace(SAVED, (_, name) => {
      if (!(name in saved)) throw new Error(`nothing saved as ${name}`);
      return saved[name];
    });
  }
  if (Array.isArray(value)) return value.map((v) => substitute(v, saved));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, saved)]));
  }
  return value;
}

const show = (value) => JSON.stringify(value) ?? "null";
const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

/** Where `actual` fails to contain `expected` (the README's subset match), or null. */
function mismatch(expected, actual, where = "") {
  if (isObject(expected)) {
    if (!isObject(actual)) return `${where || "response"}: expected an object, got ${show(actual)}`;
    for (const [key, value] of Object.entries(expected)) {
      if (!(key in actual)) return `${where}.${key}: missing (expected ${show(value)})`;
      const found = mismatch(value, actual[key], `${where}.${key}`);
      if (found) return found;
    }
    return null;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return `${where}: expected a list, got ${show(actual)}`;
    const openEnded = expected.length > 0 && expected[expected.length - 1] === "...";
    const items = openEnded ? expected.slice(0, -1) : expected;
    if (actual.length < items.length || (!openEnded && actual.length !== items.length)) {
      return `${where}: expected ${items.length} items, got ${actual.length}`;
    }
    for (const [i, value] of items.entries()) {
      const found = mismatch(value, actual[i], `${where}[${i}]`);
      if (found) return found;
    }
    return null;
  }
  if (expected !== actual) return `${where}: expected ${show(expected)}, got ${show(actual)}`;
  return null;
}

function pick(values, path) {
  for (const part of path.split(".")) {
    values = Array.isArray(values) ? values[Number(part)] : values[part];
  }
  return String(values);
}

/** What differs between a step's expectation and what happened, or null. */
function check(step, code, error, responses) {
  const expect = step.expect;
  const expectedCode = expect.code ?? "OK";
  if (code !== expectedCode) {
    const detail = error ? ` (${error.reason}: ${error.message})` : "";
    return `expected ${expectedCode}, got ${code}${detail}`;
  }
  if ("reason" in expect && error?.reason !== expect.reason) {
    return `expected reason ${expect.reason}, got ${error?.reason}`;
  }
  if ("metadata" in expect) {
    const found = mismatch(expect.metadata, error?.metadata ?? {}, "metadata");
    if (found) return found;
  }
  if ("response" in expect) return mismatch(expect.response, responses[0] ?? null);
  if ("responses" in expect) return mismatch(expect.responses, responses, "responses");
  return null;
}

/** Plays one step through the client: [code name, error or null, responses as proto3 JSON]. */
async function call(client, step) {
  const method = METHODS.get(step.call);
  if (!method) throw new Error(`no RPC ${step.call} in ${ModelConfigService.typeName}`);
  const invoke = client[method.localName];
  const options = { headers: step.metadata ?? {} };
  const json = (response) => toJson(method.output, response, { useProtoFieldName: true });
  try {
    let responses;
    if (method.methodKind === "client_streaming") {
      const requests = step.requests.map((r) => fromJson(method.input, r));
      responses = [await invoke(requests, options)];
    } else if (method.methodKind === "server_streaming") {
      const take = step.take ?? 1;
      responses = [];
      for await (const response of invoke(fromJson(method.input, step.request), options)) {
        responses.push(response);
        if (responses.length === take) break; // cancels the call
      }
    } else {
      responses = [await invoke(fromJson(method.input, step.request), options)];
    }
    return ["OK", null, responses.map(json)];
  } catch (error) {
    if (!(error instanceof ModelConfigError)) throw error;
    return [error.code, error, []];
  }
}

async function run(target, path) {
  const scenario = JSON.parse(readFileSync(path, "utf-8"));
  const name = basename(path, ".json");
  const saved = {};
  const client = createClient(target, { timeoutMs: 10_000 });
  try {
    for (const [index, raw] of scenario.steps.entries()) {
      const step = substitute(raw, saved);
      const [code, error, responses] = await call(client, step);
      const problem = check(step, code, error, responses);
      if (problem) {
        return [`${name}: step ${index + 1} (${step.call}): ${problem}`]; // later steps build on it
      }
      for (const [key, fieldPath] of Object.entries(step.save ?? {})) {
        saved[key] = pick(responses[0], fieldPath);
      }
    }
    return [];
  } finally {
    client.close();
  }
}

const { values } = parseArgs({
  options: { target: { type: "string" }, scenario: { type: "string" } },
});
if (!values.target || !values.scenario) {
  console.error("usage: node conformance.mjs --target HOST:PORT --scenario FILE");
  process.exit(2);
}
const failures = await run(values.target, values.scenario);
for (const failure of failures) console.log(failure);
process.exitCode = failures.length ? 1 : 0;

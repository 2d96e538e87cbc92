/**
 * `createClient(address, options)`: every RPC of modelconfig.v1.ModelConfigService as a method
 * in lowerCamelCase, speaking gRPC over HTTP/2 (connect-node's gRPC transport), with the client's
 * bearer token, a default deadline and typed errors (./errors.ts).
 */

import type {
  DescMessage,
  DescMethodClientStreaming,
  DescMethodServerStreaming,
  DescMethodUnary,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";
import {
  type CallOptions as ConnectCallOptions,
  type Interceptor,
  createClient as createConnectClient,
} from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";

import { toModelConfigError } from "./errors.js";
import { ModelConfigService } from "./gen/modelconfig/v1/model_config_service_pb.js";

export interface ClientOptions {
  /** Sent as `authorization: Bearer <token>` with every call. */
  token?: string;
  /**
   * The deadline of every unary call, in milliseconds (default 10,000; 0 for none). Streams
   * (watchChanges, exportConfiguration, importOverrides, applyConfiguration) have no deadline
   * unless a call gives `timeoutMs`: a feed never ends, and a million rows take a while.
   */
  timeoutMs?: number;
}

export interface CallOptions {
  /** This call's deadline in milliseconds, instead of the client's default (0: none). */
  timeoutMs?: number;
  /** Request metadata, e.g. `{"x-change-reason": "cheaper default", "x-request-id": "..."}`. */
  headers?: Record<string, string>;
  /** Aborting it cancels the call. */
  signal?: AbortSignal;
}

/** Requests of a client stream: an array, any iterable, or an async iterable. */
export type Requests<I extends DescMessage> =
  | Iterable<MessageInitShape<I>>
  | AsyncIterable<MessageInitShape<I>>;

type Method<M> =
  M extends DescMethodUnary<infer I, infer O>
    ? (request?: MessageInitShape<I>, options?: CallOptions) => Promise<MessageShape<O>>
    : M extends DescMethodServerStreaming<infer I, infer O>
      ? (request?: MessageInitShape<I>, options?: CallOptions) => AsyncGenerator<MessageShape<O>, void>
      : M extends DescMethodClientStreaming<infer I, infer O>
        ? (requests: Requests<I>, options?: CallOptions) => Promise<MessageShape<O>>
        : never;

type Methods = (typeof ModelConfigService)["method"];

/** One method per RPC (`listModels`, `setModel`, `watchChanges`, ...), and `close()`. */
export type ModelConfigClient = { [K in keyof Methods]: Method<Methods[K]> } & {
  /** Closes the HTTP/2 connection; calls still running fail. */
  close(): void;
};

export const DEFAULT_TIMEOUT_MS = 10_000;

/**
 * A client of the daemon at `address` (`"127.0.0.1:50051"` for plaintext HTTP/2, or a URL:
 * `"https://config.internal:443"` for TLS with node's default trust store).
 *
 * ```ts
 * const client = createClient("127.0.0.1:50051", { token: process.env.MODELCONFIG_TOKEN });
 * const { slots } = await client.resolveForAccount({ accountId: "acme" });
 * ```
 */
export function createClient(address: string, options: ClientOptions = {}): ModelConfigClient {
  const baseUrl = /^https?:\/\//.test(address) ? address : `http://${address}`;
  const interceptors: Interceptor[] = [];
  if (options.token) {
    const bearer = `Bearer ${options.token}`;
    interceptors.push((next) => (request) => {
      request.header.set("authorization", bearer);
      return next(request);
    });
  }
  const sessionManager = new Http2SessionManager(baseUrl);
  const transport = createGrpcTransport({ baseUrl, interceptors, sessionManager });
  const inner = createConnectClient(ModelConfigService, transport) as unknown as Record<
    string,
    (input: unknown, options: ConnectCallOptions) => unknown
  >;
  const unaryTimeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;

  const client: Record<string, unknown> = {
    close: () => sessionManager.abort(),
  };
  for (const method of ModelConfigService.methods) {
    const call = inner[method.localName];
    switch (method.methodKind) {
      case "unary":
        client[method.localName] = (request: unknown = {}, callOptions: CallOptions = {}) =>
          unary(() => call(request, connectOptions(callOptions, unaryTimeoutMs)));
        break;
      case "client_streaming":
        client[method.localName] = (requests: Requests<DescMessage>, callOptions: CallOptions = {}) =>
          unary(() => call(asAsync(requests), connectOptions(callOptions, 0)));
        break;
      case "server_streaming":
        client[method.localName] = (request: unknown = {}, callOptions: CallOptions = {}) =>
          serverStream(call, request, callOptions);
        break;
      default:
        throw new Error(`${method.name}: ${method.methodKind} calls are not supported`);
    }
  }
  return client as ModelConfigClient;
}

function connectOptions(options: CallOptions, defaultTimeoutMs: number): ConnectCallOptions {
  const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
  return {
    timeoutMs: timeoutMs > 0 ? timeoutMs : undefined,
    headers: options.headers,
    signal: options.signal,
  };
}

async function unary<T>(call: () => unknown): Promise<T> {
  try {
    return (await call()) as T;
  } catch (error) {
    throw toModelConfigError(error);
  }
}

/**
 * The responses of a server stream as an async iterator. Leaving a `for await` loop early
 * (break, return, throw) or calling `return()` cancels the call.
 */
async function* serverStream(
  call: (input: unknown, options: ConnectCallOptions) => unknown,
  request: unknown,
  options: CallOptions,
): AsyncGenerator<unknown, void> {
  const cancel = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, cancel.signal]) : cancel.signal;
  try {
    const responses = call(request, connectOptions({ ...options, signal }, 0));
    for await (const response of responses as AsyncIterable<unknown>) {
      yield response;
    }
  } catch (error) {
    throw toModelConfigError(error);
  } finally {
    cancel.abort();
  }
}

async function* asAsync<T>(requests: Iterable<T> | AsyncIterable<T>): AsyncIterable<T> {
  yield* requests;
}

/**
 * @modelconfig/client: the TypeScript client of the modelconfig daemon.
 *
 * `createClient(address, options)` returns every RPC of modelconfig.v1.ModelConfigService as a
 * lowerCamelCase method taking a plain request object; failures are `ModelConfigError`s. The
 * generated protobuf-es schemas and message types are re-exported (`SetModelRequestSchema`,
 * `Scope`, ...), for `create`, `toJson` and `fromJson` from `@bufbuild/protobuf`.
 */

export {
  type CallOptions,
  type ClientOptions,
  DEFAULT_TIMEOUT_MS,
  type ModelConfigClient,
  type Requests,
  createClient,
} from "./client.js";
export {
  AlreadyExists,
  EtagMismatch,
  FailedPrecondition,
  InvalidArgument,
  ModelConfigError,
  type ModelConfigErrorInit,
  NotFound,
  OutOfRange,
  PermissionDenied,
  STATUS_CODE_NAMES,
  type StatusCodeName,
  Unauthenticated,
  Unavailable,
  toModelConfigError,
} from "./errors.js";
export * from "./gen/modelconfig/v1/model_config_service_pb.js";
export * from "./gen/modelconfig/v1/resources_pb.js";

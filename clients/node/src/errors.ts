/**
 * Typed errors of the modelconfig client, one per gRPC status the daemon answers with.
 *
 * ModelConfigError                 any failed call; .code, .reason, .metadata, .details
 * ├── InvalidArgument              INVALID_ARGUMENT: the request is malformed (.fieldViolations)
 * ├── NotFound                     NOT_FOUND: no such model or override
 * ├── AlreadyExists                ALREADY_EXISTS: a model name or alias is taken
 * ├── EtagMismatch                 ABORTED: the etag is stale; read again and retry
 * ├── FailedPrecondition           FAILED_PRECONDITION: the state forbids the change (.violations)
 * ├── Unauthenticated              UNAUTHENTICATED
 * ├── PermissionDenied             PERMISSION_DENIED
 * ├── OutOfRange                   OUT_OF_RANGE: a watch's revision is compacted or ahead
 * └── Unavailable                  UNAVAILABLE or DEADLINE_EXCEEDED: try again later
 *
 * The same tree as the Python client's `modelconfig._errors`. `toModelConfigError` is the one
 * place a transport error (connect's ConnectError, carrying the `google.rpc.Status` details the
 * daemon sends in `grpc-status-details-bin`) becomes one of these.
 */

import { ConnectError } from "@connectrpc/connect";
import {
  type BadRequest_FieldViolation,
  BadRequestSchema,
  ErrorInfoSchema,
  type PreconditionFailure_Violation,
  PreconditionFailureSchema,
} from "./gen/google/rpc/error_details_pb.js";

/** gRPC status code names, indexed by the code's number. */
export const STATUS_CODE_NAMES = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
] as const;

export type StatusCodeName = (typeof STATUS_CODE_NAMES)[number];

export interface ModelConfigErrorInit {
  code: StatusCodeName;
  reason?: string;
  metadata?: Record<string, string>;
  fieldViolations?: BadRequest_FieldViolation[];
  violations?: PreconditionFailure_Violation[];
  cause?: unknown;
}

/** A call to the daemon failed; `reason` is the ErrorInfo reason (UPPER_SNAKE). */
export class ModelConfigError extends Error {
  /** The status code's name, e.g. `"INVALID_ARGUMENT"`. */
  readonly code: StatusCodeName;
  /** The `google.rpc.ErrorInfo` reason, e.g. `"SCOPE_REQUIRED"`; empty when none was sent. */
  readonly reason: string;
  /** The ErrorInfo metadata: the values the message speaks of, machine-readable. */
  readonly metadata: Record<string, string>;
  /** `google.rpc.BadRequest` field violations (INVALID_ARGUMENT). */
  readonly fieldViolations: BadRequest_FieldViolation[];
  /** `google.rpc.PreconditionFailure` violations (FAILED_PRECONDITION). */
  readonly violations: PreconditionFailure_Violation[];

  /** `message` is the status message the daemon wrote, without a code prefix. */
  constructor(message: string, init: ModelConfigErrorInit) {
    super(message, { cause: init.cause });
    this.name = new.target.name;
    this.code = init.code;
    this.reason = init.reason ?? "";
    this.metadata = init.metadata ?? {};
    this.fieldViolations = init.fieldViolations ?? [];
    this.violations = init.violations ?? [];
  }

  override toString(): string {
    return this.reason
      ? `${this.code} ${this.reason}: ${this.message}`
      : `${this.code}: ${this.message}`;
  }
}

export class InvalidArgument extends ModelConfigError {}
export class NotFound extends ModelConfigError {}
export class AlreadyExists extends ModelConfigError {}
export class EtagMismatch extends ModelConfigError {}
export class FailedPrecondition extends ModelConfigError {}
export class Unauthenticated extends ModelConfigError {}
export class PermissionDenied extends ModelConfigError {}
export class OutOfRange extends ModelConfigError {}
export class Unavailable extends ModelConfigError {}

const CLASSES: Partial<Record<StatusCodeName, typeof ModelConfigError>> = {
  INVALID_ARGUMENT: InvalidArgument,
  NOT_FOUND: NotFound,
  ALREADY_EXISTS: AlreadyExists,
  ABORTED: EtagMismatch,
  FAILED_PRECONDITION: FailedPrecondition,
  UNAUTHENTICATED: Unauthenticated,
  PERMISSION_DENIED: PermissionDenied,
  OUT_OF_RANGE: OutOfRange,
  UNAVAILABLE: Unavailable,
  DEADLINE_EXCEEDED: Unavailable,
};

/**
 * The typed error for what a call threw: a ConnectError becomes the ModelConfigError subclass
 * of its status, with the ErrorInfo, BadRequest and PreconditionFailure details decoded; anything
 * else (a bug, a malformed request init) is returned unchanged.
 */
export function toModelConfigError(error: unknown): unknown {
  if (error instanceof ModelConfigError || !(error instanceof ConnectError)) {
    return error;
  }
  const code = STATUS_CODE_NAMES[error.code] ?? "UNKNOWN";
  const info = error.findDetails(ErrorInfoSchema)[0];
  const ErrorClass = CLASSES[code] ?? ModelConfigError;
  return new ErrorClass(error.rawMessage, {
    code,
    reason: info?.reason,
    metadata: info ? { ...info.metadata } : {},
    fieldViolations: error.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations),
    violations: error.findDetails(PreconditionFailureSchema).flatMap((d) => d.violations),
    cause: error,
  });
}

// The package's public surface: the embedded database and its types.
export { open } from './wiring/open.js';
export { openInThread, type InThreadDatabase, type InThreadOptions } from './wiring/in_thread.js';
export type {
  Database,
  Session,
  Bytes,
  SetOptions,
  ScanOptions,
  ScanResult,
  VolumeInfo,
  PubSubMessage,
  Subscription,
  BlobStreamOptions,
  ReadRange,
  BlobInfo,
  Limits,
  OpenOptions,
  SyncPolicy,
} from './db/api.js';
export { DEFAULT_LIMITS } from './db/api.js';
export { StoreError, type ErrorCode } from './runtime/errors.js';
export { NodeFs, type Fs, type FileHandle } from './runtime/fs.js';
export { systemClock, ManualClock, type Clock } from './runtime/clock.js';
export { Client } from './client/client.js';

// The Database: the default session plus what only the owner of the whole store may do
// (new sessions, COMPACT, VOLINFO, checkpoint, stats, close). How the ports are provided —
// actors on worker threads (open.ts) or storage objects in this thread (local.ts) — is the
// opener's business; it hands its shutdown in as `closer`.
import type { Database, GroupInfo, Progress, ScrubReport, ScrubSummary, Session, VacuumReport, VolumeUsageInfo } from './api.js';
import { volumeUsage } from './volume_usage.js';
import type { Engine } from './engine.js';
import { EngineSession } from './session.js';
import { StoreError } from '../runtime/errors.js';

/**
 * What runs once for the whole store, on the thread that opened it (the vacuum): a front end's
 * database reaches it through main.
 */
export interface StoreAdmin {
  /** COMPACT, run once for the whole store (two at once would race for the WAL's compaction). */
  compact?(): Promise<void>;
  vacuum(volume?: number): Promise<VacuumReport[]>;
  /** Starts a scrub (started: false when one runs already); with `wait`, answers its summary when done. */
  scrub(wait: boolean): Promise<{ started: boolean; summary: ScrubSummary | null }>;
  /** The last scrub's summary (null: none since start-up). */
  lastScrub(): Promise<ScrubSummary | null>;
  operations(): Promise<Progress[]>;
}

const NO_ADMIN: StoreAdmin = {
  vacuum: () => Promise.reject(new StoreError('BAD_ARGUMENT', 'VACUUM runs on the master only')),
  scrub: () => Promise.reject(new StoreError('BAD_ARGUMENT', 'SCRUB runs on the master only')),
  lastScrub: async () => null,
  operations: async () => [],
};

export class EngineDatabase extends EngineSession implements Database {
  private closed = false;

  constructor(
    engine: Engine,
    private readonly closer: () => Promise<void>,
    private readonly extraStats: () => Promise<Record<string, unknown>> = async () => ({}),
    private readonly scrubber: () => Promise<ScrubReport[]> = async () => [],
    private readonly admin: StoreAdmin = NO_ADMIN,
  ) {
    super(engine);
  }

  vacuum(volume?: number): Promise<VacuumReport[]> {
    this.assertOpen();
    return this.admin.vacuum(volume);
  }

  scrub(wait = true): Promise<{ started: boolean; summary: ScrubSummary | null }> {
    this.assertOpen();
    return this.admin.scrub(wait);
  }

  lastScrub(): Promise<ScrubSummary | null> {
    return this.admin.lastScrub();
  }

  operations(): Promise<Progress[]> {
    return this.admin.operations();
  }

  verify(): Promise<ScrubReport[]> {
    this.assertOpen();
    return this.scrubber();
  }

  session(): Session {
    this.assertOpen();
    return new EngineSession(this.engine);
  }

  compact(): Promise<void> {
    this.assertOpen();
    return this.admin.compact?.() ?? this.engine.compact();
  }

  volinfo(): Promise<VolumeUsageInfo[]> {
    return volumeUsage(this.engine.ports);
  }

  groups(): Promise<GroupInfo[]> {
    return this.engine.ports.volumes.groupInfo();
  }

  async checkpoint(): Promise<void> {
    await this.engine.ports.index.checkpoint();
  }

  async stats(): Promise<Record<string, unknown>> {
    const index = await this.engine.ports.index.stats();
    return { index, ...(await this.extraStats()) };
  }

  configure(settings: { notifyKeyspaceEvents?: number }): void {
    if (settings.notifyKeyspaceEvents !== undefined) this.engine.notifyFlags = settings.notifyKeyspaceEvents;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.txn.clear();
    await this.closer();
  }

  protected assertOpen(): void {
    if (this.closed) throw new StoreError('CLOSED', 'the database is closed');
  }
}

// What each volume holds: its size from its writer, its live bytes from the index (the only one
// that knows which needles are pointed at), the rest garbage (docs/vacuum.md, "What is garbage").
import { VOLUME_SUPERBLOCK_SIZE } from '../storage/volume_format.js';
import type { VolumeUsageInfo } from './api.js';
import type { Ports } from './ports.js';

export async function volumeUsage(ports: Pick<Ports, 'volumes' | 'index'>): Promise<VolumeUsageInfo[]> {
  const [volumes, usage] = await Promise.all([ports.volumes.list(), ports.index.volumeUsage()]);
  const live = new Map(usage.live);
  const retired = new Set(usage.retired);
  return volumes.map((v) => {
    const liveBytes = live.get(v.id) ?? 0;
    // Bytes written past the superblock and not pointed at; never below 0 (a volume cut back by
    // a repair is the index's to catch up with, not a negative garbage).
    const garbageBytes = Math.max(0, v.sizeBytes - VOLUME_SUPERBLOCK_SIZE - liveBytes);
    return { ...v, liveBytes, garbageBytes, retired: retired.has(v.id) };
  });
}

// Whether uWebSockets.js loads here, asked in the main thread before any front end starts:
// it ships native builds for some platforms only, and a front end's thread that fails to load
// it would be restarted and given up, with a stack instead of a reason.
import { StoreError } from '../runtime/errors.js';

/**
 * Throws one line naming what needs uWS (`the HTTP API`) and, if given, the way out (`; start
 * with --http "" ...`), when the module does not load on this platform and Node.
 */
export async function assertUwsLoads(needed: string, wayOut = ''): Promise<void> {
  try {
    await import('uWebSockets.js');
  } catch (err) {
    const why = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    throw new StoreError('BAD_ARGUMENT', `${needed} needs uWebSockets.js, which does not load on ${process.platform}-${process.arch} with Node ${process.versions.node} (${why})${wayOut}`);
  }
}

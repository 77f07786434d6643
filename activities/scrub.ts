import { scrubCredentials } from '../plan/secret-ref';

/** Credential scrubbing for any text that leaves an activity (failures, alerts, tool output). */
export function scrub(text: string, secrets: string[] = []): string {
  let out = scrubCredentials(text);
  for (const s of secrets) if (s) out = out.split(s).join('***');
  return out;
}

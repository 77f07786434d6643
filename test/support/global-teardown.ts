export default async function globalTeardown(): Promise<void> {
  const g = globalThis as unknown as { __dbferryServers?: Array<{ stop(): Promise<void> }> };
  await Promise.all((g.__dbferryServers ?? []).map((s) => s.stop().catch(() => undefined)));
}

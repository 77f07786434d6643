import { join } from 'node:path';
import { createConnection, type Connection } from 'mysql2/promise';
import { startMariaDb, type MariaDbServer } from '../../local/mariadb-server';

export interface MariaSource {
  maria: MariaDbServer;
  /** A session reading values as text, as the tests compare them (multiple statements allowed). */
  my: Connection;
  stop(): Promise<void>;
}

/** A throwaway MariaDB server of its own for one test file, and a session on it. */
export async function startMariaSource(): Promise<MariaSource> {
  const maria = await startMariaDb({ baseDir: join(__dirname, '..', '..', '.tmp', 'test-servers') });
  const my = await createConnection({ uri: maria.url(), multipleStatements: true, dateStrings: true, supportBigNumbers: true, bigNumberStrings: true, decimalNumbers: false } as never);
  return {
    maria,
    my,
    async stop() {
      await my.end().catch(() => undefined);
      await maria.stop();
    },
  };
}

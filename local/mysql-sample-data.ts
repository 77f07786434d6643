import { createConnection } from 'mysql2/promise';

/**
 * The MySQL demo's source database: the same small shop in MySQL's types — unsigned and
 * AUTO_INCREMENT keys, a composite key, foreign keys, enum and set, decimal, datetime(6) and
 * timestamp, json, a blob, a tinyint(1) flag, ON UPDATE CURRENT_TIMESTAMP, a zero date, and a
 * table whose name needs quoting. Sizes scale with `orders` (MariaDB's seq_1_to_N tables).
 */
export async function createMysqlSampleDatabase(adminUrl: string, database: string, orders: number): Promise<void> {
  const customers = Math.max(10, Math.floor(orders / 3));
  const c = await createConnection({ uri: adminUrl, multipleStatements: true });
  try {
    await c.query(`SET sql_mode = ''; CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4; USE \`${database}\`;`);
    await c.query(`
CREATE TABLE customers (
  id          bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  email       varchar(200) NOT NULL UNIQUE,
  name        varchar(100) NOT NULL,
  country     char(2) NOT NULL,
  vip         tinyint(1) NOT NULL DEFAULT 0,
  interests   set('books','music','garden','tools') NOT NULL DEFAULT '',
  created_at  datetime(6) NOT NULL,
  updated_at  timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  birthday    date
) ENGINE=InnoDB;
CREATE TABLE products (
  id          int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  sku         char(36) NOT NULL UNIQUE,
  title       varchar(200) NOT NULL,
  price       decimal(10,2) unsigned NOT NULL,
  attributes  json,
  image       blob
) ENGINE=InnoDB;
CREATE TABLE orders (
  id          bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  customer_id bigint unsigned NOT NULL,
  status      enum('new','paid','shipped','cancelled') NOT NULL DEFAULT 'new',
  ordered_at  datetime(3) NOT NULL,
  note        text,
  KEY by_customer (customer_id, ordered_at),
  CONSTRAINT orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE=InnoDB;
CREATE TABLE order_items (
  order_id    bigint unsigned NOT NULL,
  line        smallint unsigned NOT NULL,
  product_id  int unsigned NOT NULL,
  quantity    int NOT NULL,
  unit_price  decimal(10,2) NOT NULL,
  PRIMARY KEY (order_id, line),
  CONSTRAINT items_order FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE,
  CONSTRAINT items_product FOREIGN KEY (product_id) REFERENCES products (id)
) ENGINE=InnoDB;
CREATE TABLE \`Audit Log\` (
  at      datetime(6) NOT NULL,
  action  varchar(50) NOT NULL,
  detail  text
) ENGINE=InnoDB;

INSERT INTO customers (email, name, country, vip, interests, created_at, updated_at, birthday)
  SELECT CONCAT('customer', seq, '@example.com'), CONCAT('Customer ', seq), ELT(1 + seq % 4, 'DE', 'FR', 'US', 'JP'), seq % 10 = 0,
         ELT(1 + seq % 4, '', 'books', 'music,garden', 'books,tools'), '2024-01-01' + INTERVAL seq SECOND + INTERVAL seq % 1000000 MICROSECOND,
         '2024-06-01' + INTERVAL seq SECOND, IF(seq % 50 = 0, '0000-00-00', '1990-01-01' + INTERVAL seq % 10000 DAY)
    FROM seq_1_to_${customers};
INSERT INTO products (sku, title, price, attributes, image)
  SELECT UUID(), CONCAT('Product ', seq), 1 + seq % 500 + 0.99, JSON_OBJECT('color', ELT(1 + seq % 3, 'red', 'green', 'blue'), 'weight', seq % 40),
         IF(seq % 5 = 0, UNHEX(SHA2(seq, 256)), NULL)
    FROM seq_1_to_200;
INSERT INTO orders (customer_id, status, ordered_at, note)
  SELECT 1 + seq % ${customers}, ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'cancelled'), '2024-01-01' + INTERVAL seq MINUTE, IF(seq % 7 = 0, CONCAT('note ', seq), NULL)
    FROM seq_1_to_${orders};
INSERT INTO order_items SELECT o.id, s.seq, 1 + (o.id + s.seq) % 200, 1 + s.seq, 9.99 FROM orders o JOIN seq_1_to_2 s;
INSERT INTO \`Audit Log\` SELECT '2024-01-01' + INTERVAL seq SECOND, 'created', NULL FROM seq_1_to_1000;
ANALYZE TABLE customers, products, orders, order_items, \`Audit Log\`;`);
  } finally {
    await c.end();
  }
}

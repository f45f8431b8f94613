// node-postgres against a router: parameters (a Date, a JSON object), a
// transaction with a savepoint rolled back, RETURNING, and typed results
// (timestamptz as a Date, jsonb as an object, integer as a number,
// out-of-range integers refused). Prints "ok".
// usage: node basic.js PORT
const assert = require('assert');
const { Client } = require('pg');

(async () => {
  const c = new Client({ host: '127.0.0.1', port: Number(process.argv[2]), user: 't', database: 't' });
  await c.connect();
  await c.query('CREATE TABLE np (id SERIAL PRIMARY KEY, name TEXT, at TIMESTAMPTZ, j JSONB)');
  await c.query('BEGIN');
  const at = new Date('2024-01-02T03:04:05.678Z');
  const ins = await c.query('INSERT INTO np (name, at, j) VALUES ($1, $2, $3) RETURNING id', ['a', at, { k: [1, 2] }]);
  assert.strictEqual(ins.rows.length, 1);
  await c.query('SAVEPOINT s');
  await c.query('INSERT INTO np (name) VALUES ($1)', ['undone']);
  await c.query('ROLLBACK TO SAVEPOINT s');
  await c.query('COMMIT');
  const { rows } = await c.query('SELECT name, at, j FROM np WHERE name = $1', ['a']);
  assert.strictEqual(rows.length, 1);
  assert.ok(rows[0].at instanceof Date, 'timestamptz arrives as a Date');
  assert.strictEqual(rows[0].at.getTime(), at.getTime());
  assert.deepStrictEqual(rows[0].j, { k: [1, 2] });
  // integer and smallint columns are int4/int2, so they arrive as numbers
  // (bigint, like count(*), is a string in node-postgres, as with PostgreSQL).
  await c.query('CREATE TABLE nw (k INTEGER PRIMARY KEY, a integer, b smallint, c bigint)');
  await c.query('INSERT INTO nw VALUES (1, $1, $2, $3)', [2147483647, -32768, '9007199254740993']);
  const w = await c.query('SELECT a, b, c FROM nw');
  assert.deepStrictEqual(w.rows[0], { a: 2147483647, b: -32768, c: '9007199254740993' });
  await assert.rejects(c.query('INSERT INTO nw VALUES (2, 2147483648, 0, 0)'), (e) => e.code === '22003');
  // Arrays: a JS array goes in as a PostgreSQL array and comes back as one;
  // `= ANY($1)` takes an array parameter.
  await c.query('CREATE TABLE na (id int PRIMARY KEY, tags text[], nums integer[])');
  await c.query('INSERT INTO na VALUES ($1, $2, $3), (2, $4, $5)', [1, ['x', 'y z', null], [1, 2], [], [3]]);
  const arr = await c.query('SELECT id, tags, nums FROM na WHERE id = ANY($1) ORDER BY id', [[1, 2, 9]]);
  assert.deepStrictEqual(arr.rows, [
    { id: 1, tags: ['x', 'y z', null], nums: [1, 2] },
    { id: 2, tags: [], nums: [3] },
  ]);
  await assert.rejects(c.query('INSERT INTO na VALUES (3, $1, $2)', [[], ['x']]), (e) => e.code === '22P02');
  const n = await c.query('SELECT count(*) AS n FROM np');
  assert.strictEqual(Number(n.rows[0].n), 1, 'the savepoint undid its row');
  await c.end();
  console.log('ok');
})().catch((e) => { console.error(e); process.exit(1); });

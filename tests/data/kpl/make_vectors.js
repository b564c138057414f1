// Test vectors from the AWS aggregation library for Node (npm aws-kinesis-agg), made by hand,
// never by CI. From this directory:
//
//   npm install --prefix /tmp/kpl-agg aws-kinesis-agg@4.2.8
//   build/release/tests/test_kpl "[.write-vectors]"      (from the source root: riffle's side)
//   NODE_PATH=/tmp/kpl-agg/node_modules node make_vectors.js
//
// Writes
//   node_aggregates.txt   user records aggregated by aws-kinesis-agg (RecordAggregator)
//   node_deaggregated.txt riffle_aggregates.txt de-aggregated by aws-kinesis-agg
//                         (deaggregateSync, checksums on)
//
// Format (every file): "case <name>" starts a case; "user <key> <ehk> <data> [<subseq>]"
// is a user record, "aggregate <key> <ehk> <data>" a Kinesis record; keys and data in hex,
// "-" for no explicit hash key (and for a record passed through without a sub-sequence).
'use strict';
const fs = require('fs');
const path = require('path');
const agg = require('aws-kinesis-agg');
const version = require('aws-kinesis-agg/package.json').version;

const hex = (b) => Buffer.from(b).toString('hex');
const ehkOf = (e) => (e ? e : '-');

// The user records of each case: [partition key, explicit hash key or null, data].
const bytes256 = Buffer.from([...Array(256).keys()]);
const cases = {
  basic: [['alpha', null, 'one'], ['beta', null, 'two'], ['gamma', null, 'three']],
  shared_keys: [['k1', null, 'a'], ['k2', null, 'b'], ['k1', null, 'c'], ['k2', null, 'd'],
                ['k1', null, 'e']],
  explicit_hash_keys: [
    ['p', '0', 'low'], ['q', '340282366920938463463374607431768211455', 'high'],
    ['r', null, 'none'], ['s', '0', 'low again'],
  ],
  binary_and_empty: [['bin', null, bytes256], ['empty', null, Buffer.alloc(0)],
                     ['zeros', null, Buffer.alloc(300)]],
  utf8_keys: [['\u00e9t\u00e9', null, 'summer'], ['\u65e5\u672c', null, 'japan'],
              ['\u{1F600}', null, 'smile']],
  // Indexes and record lengths past 127: two-byte varints.
  many: Array.from({length: 200}, (_, i) =>
      ['user-' + String(i % 150).padStart(11, '0'), null,
       ('{"seq":' + i + ',"pad":"').padEnd(129, 'x') + '\n']),
};

function aggregateCase(name, records) {
  const out = [`case ${name}`];
  for (const [k, e, d] of records) out.push(`user ${hex(k)} ${ehkOf(e)} ${hex(d)}`);
  const aggregator = new agg.RecordAggregator();
  for (const [k, e, d] of records) {
    const r = {partitionKey: k, data: Buffer.from(d)};
    if (e) r.explicitHashKey = e;
    aggregator.addUserRecord(r);
  }
  const encoded = aggregator.build();
  out.push(`aggregate ${hex(encoded.partitionKey)} ${ehkOf(encoded.ExplicitHashKey)} ` +
           `${hex(encoded.data)}`);
  return out;
}

function parseCases(text) {
  const result = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f[0] === 'case') result.push({name: f[1], users: [], aggregates: []});
    if (f[0] === 'user') result[result.length - 1].users.push(f);
    if (f[0] === 'aggregate') result[result.length - 1].aggregates.push(f);
  }
  return result;
}

function deaggregateCase(c) {
  const out = [`case ${c.name}`];
  c.aggregates.forEach(([, key, , data], i) => {
    // As GetRecords returns it: no explicit hash key.
    const record = {
      partitionKey: Buffer.from(key, 'hex').toString('utf8'),
      sequenceNumber: String(i),
      data: Buffer.from(data, 'hex').toString('base64'),
    };
    agg.deaggregateSync(record, true, (err, users) => {
      if (err) throw err;
      for (const u of users) {
        out.push(`user ${hex(u.partitionKey)} ${ehkOf(u.explicitPartitionKey)} ` +
                 `${Buffer.from(u.data, 'base64').toString('hex')} ` +
                 `${u.subSequenceNumber === undefined ? '-' : u.subSequenceNumber}`);
      }
    });
  });
  return out;
}

const header = `# Made by make_vectors.js with aws-kinesis-agg ${version}. Do not edit.`;
const aggregated = [header];
for (const [name, records] of Object.entries(cases)) aggregated.push(...aggregateCase(name, records));
fs.writeFileSync(path.join(__dirname, 'node_aggregates.txt'), aggregated.join('\n') + '\n');

const riffle = path.join(__dirname, 'riffle_aggregates.txt');
const deaggregated = [header];
for (const c of parseCases(fs.readFileSync(riffle, 'utf8'))) deaggregated.push(...deaggregateCase(c));
fs.writeFileSync(path.join(__dirname, 'node_deaggregated.txt'), deaggregated.join('\n') + '\n');
console.log('wrote node_aggregates.txt and node_deaggregated.txt');

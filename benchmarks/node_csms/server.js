// A reference OCPP 1.6J central system on ocpp-rpc (Node.js), measured by benchmarks/csms_load.py --server node.
// It accepts any charge point id, validates every message (strictMode, the library's 1.6 schemas) and answers
// BootNotification, StatusNotification, MeterValues and Heartbeat. It stores nothing and sends no calls of its
// own (no capability probe): the floor against which evsite's central system, which does both, is compared.
// Prints "listening on ws://HOST:PORT/ocpp/" on stderr, as `evsite serve` does.
'use strict';
const http = require('node:http');
const { RPCServer } = require('ocpp-rpc');

const host = process.argv[2] || '127.0.0.1';
const port = Number(process.argv[3] || 0);
const now = () => new Date().toISOString();

const rpc = new RPCServer({ protocols: ['ocpp1.6'], strictMode: true });
rpc.auth((accept) => accept());
rpc.on('client', (client) => {
  client.handle('BootNotification', () => ({ status: 'Accepted', interval: 300, currentTime: now() }));
  client.handle('StatusNotification', () => ({}));
  client.handle('MeterValues', () => ({}));
  client.handle('Heartbeat', () => ({ currentTime: now() }));
});

// Our own HTTP server for the same listen backlog as evsite's (4096): ocpp-rpc's listen() keeps Node's 511.
const server = http.createServer((req, res) => { res.statusCode = 404; res.end(); });
server.on('upgrade', rpc.handleUpgrade);
server.listen({ host, port, backlog: 4096 }, () => {
  process.stderr.write(`listening on ws://${host}:${server.address().port}/ocpp/\n`);
});
const stop = () => { rpc.close({ force: true }); server.close(); process.exit(0); };
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

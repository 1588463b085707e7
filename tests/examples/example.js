// scopefs from Node.js: register, adopt, set rules, a refusal, release.
// Run: node example.js [MOUNT]   (or SCOPEFS_MOUNT=MOUNT)
const fs = require('fs');
const path = require('path');

const mnt = process.argv[2] || process.env.SCOPEFS_MOUNT || '/run/scopes';
const pod = path.join(mnt, 'worker');
const get = (file) => fs.readFileSync(path.join(pod, file), 'utf8').trim();

fs.mkdirSync(pod); // registers worker, owned by this process
fs.writeFileSync(path.join(pod, 'pid'), `${process.pid}\n`); // adopts
fs.writeFileSync(path.join(pod, 'allow'), 'write recursive /srv/proj/src\nread recursive /srv/proj\n');
console.log(`worker: pid ${get('pid')}, session ${get('session')}`);
console.log(get('allow'));

const rival = path.join(mnt, 'rival');
fs.mkdirSync(rival);
try {
  fs.writeFileSync(path.join(rival, 'allow'), 'write recursive /srv/proj/src/lib\n');
} catch (e) {
  if (e.code !== 'EBUSY') throw e;
  console.log('rival refused: EBUSY'); // worker holds that scope
}

fs.rmdirSync(rival); // releases
fs.rmdirSync(pod);
console.log('released');

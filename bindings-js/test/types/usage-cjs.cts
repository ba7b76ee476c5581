// The same package through `require` (CommonJS TypeScript).
import tripwire = require('tripwire');
import testing = require('tripwire/testing');

const p = new tripwire.Pipeline({}, { clock: new testing.FakeClock() });
const v: Promise<string> = p.execute(() => 'ok');
void v;

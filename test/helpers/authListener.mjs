// An SMTP server that offers AUTH without TLS, takes any credentials and prints each as a JSON line
// ({"ready": port} first). Run inside a network namespace by test/helpers/netns.ts.
import { SMTPServer } from 'smtp-server';

const [host, port] = process.argv.slice(2);
const server = new SMTPServer({
  logger: false,
  disabledCommands: ['STARTTLS'],
  allowInsecureAuth: true,
  authOptional: true,
  onAuth(auth, _session, cb) {
    process.stdout.write(`${JSON.stringify({ auth: { username: auth.username, password: auth.password } })}\n`);
    cb(null, { user: auth.username });
  },
  onData(stream, _session, cb) {
    stream.resume();
    stream.on('end', () => {
      process.stdout.write(`${JSON.stringify({ message: true })}\n`);
      cb();
    });
  },
});
server.on('error', () => undefined);
server.listen(Number(port), host, () => process.stdout.write(`${JSON.stringify({ ready: server.server.address().port })}\n`));

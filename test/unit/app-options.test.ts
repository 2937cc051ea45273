import { describe, expect, it } from 'vitest'
import { checkBinary, parseAppOptions, parsePort, splitCommand } from '../../src/plan/app-options.js'

describe('manifest options', () => {
  it('parses every option into manifest terms', () => {
    const app = parseAppOptions({
      exec: `sh -c 'echo "hi there"'`,
      execArgs: ['--x'],
      imageVersion: '1.2.3',
      label: ['channel=stable'],
      env: ['FOO=a=b'],
      port: ['http:tcp:8080', 'dns:udp:53:2:socket-activated'],
      mount: ['data:/data', 'cfg:/etc/app:ro'],
      volume: ['data=/srv/data'],
      isolator: ['resource/memory={"limit":"1G"}'],
      supplementaryGid: [10, '20'],
      workingDir: '/tmp',
      annotation: ['authors=me'],
      preStart: 'echo pre',
    })
    expect(app.exec).toEqual(['sh', '-c', 'echo "hi there"'])
    expect(app.labels).toEqual([
      { name: 'version', value: '1.2.3' },
      { name: 'channel', value: 'stable' },
    ])
    expect(app.environment).toEqual([{ name: 'FOO', value: 'a=b' }])
    expect(app.ports[1]).toEqual({ name: 'dns', protocol: 'udp', port: 53, count: 2, socketActivated: true })
    expect(app.mounts).toEqual([
      { name: 'data', path: '/data', readOnly: false },
      { name: 'cfg', path: '/etc/app', readOnly: true },
    ])
    expect(app.isolators).toEqual([{ name: 'resource/memory', value: { limit: '1G' } }])
    expect(app.supplementaryGIDs).toEqual([10, 20])
    expect(app.eventHandlers).toEqual([{ name: 'pre-start', exec: ['echo', 'pre'] }])
  })

  it.each([
    [{ label: ['Bad=x'] }, /--label 'Bad=x': ACIdentifier must contain only lower case/],
    [{ label: ['novalue'] }, /--label 'novalue': expected NAME=VALUE/],
    [{ env: ['1X=y'] }, /--env '1X=y': variable names are letters, digits and "_"/],
    [{ port: ['Web:tcp:80'] }, /--port 'Web:tcp:80': ACName must contain only lower case/],
    [{ port: ['web:sctp:80'] }, /protocol must be tcp or udp/],
    [{ port: ['web:tcp:0'] }, /port must be in 1-65535 range/],
    [{ port: ['web:tcp:65535:2'] }, /end of port range/],
    [{ mount: ['data:relative'] }, /--mount 'data:relative': the path must be absolute/],
    [{ mount: ['data:/d:rw'] }, /expected name:path\[:ro\]/],
    [{ volume: ['data=/x'] }, /--volume 'data=\/x': no --mount declares a mount point named 'data'/],
    [{ isolator: ['resource/memory={bad'] }, /the value must be JSON/],
    [{ workingDir: 'tmp' }, /workingDirectory must be an absolute path/],
    [{ supplementaryGid: [-1] }, /--supplementary-gid '-1': must be a whole number/],
    [{ exec: `sh -c 'unterminated` }, /unterminated ' quote/],
    [{ user: '' }, /--user '': user cannot be empty/],
    [{ supplementaryGid: ['abc'] }, /--supplementary-gid 'abc': must be a whole number from 0 to 4294967294/],
    [{ supplementaryGid: ['4294967295'] }, /--supplementary-gid '4294967295': must be a whole number/],
    [{ supplementaryGid: ['0x10'] }, /--supplementary-gid '0x10': must be a whole number/],
    [{ supplementaryGid: ['1e3'] }, /--supplementary-gid '1e3': must be a whole number/],
    [{ supplementaryGid: [' 10'] }, /--supplementary-gid ' 10': must be a whole number/],
    [{ supplementaryGid: [1.5] }, /--supplementary-gid '1.5': must be a whole number/],
    [{ port: ['a:tcp:0x50'] }, /--port 'a:tcp:0x50': port '0x50' must be written in decimal digits/],
    [{ port: ['a:tcp: 80'] }, /--port 'a:tcp: 80': port ' 80' must be written in decimal digits/],
    [{ port: ['a:tcp:1e3'] }, /--port 'a:tcp:1e3': port '1e3' must be written in decimal digits/],
    [{ port: ['a:tcp:80:0x2'] }, /'0x2' is neither a count/],
    [{ port: ['a:tcp:80: 2'] }, /' 2' is neither a count/],
    [{ mount: ['d:/d'], volume: ['d=/a', 'd=/b'] }, /--volume 'd=\/b': mount point 'd' already has a volume/],
    [
      { exec: 'bin/../../../../usr/bin/env' },
      /--exec 'bin\/\.\.\/\.\.\/\.\.\/\.\.\/usr\/bin\/env': .* leads out of the profile/,
    ],
    [{ preStart: '../x' }, /--pre-start '\.\.\/x': '\.\.\/x' leads out of the profile/],
    [{ postStop: 'bin/../.. arg' }, /--post-stop 'bin\/\.\.\/\.\. arg': 'bin\/\.\.\/\.\.' leads out of the profile/],
  ])('refuses %j, naming the rule', (input, message) => {
    expect(() => parseAppOptions(input)).toThrow(message)
  })

  it('splits commands like a shell', () => {
    expect(splitCommand('exec', `a "b c" 'd e' f\\ g ""`)).toEqual(['a', 'b c', 'd e', 'f g', ''])
  })

  it('takes a port count and socket activation in either order', () => {
    expect(parsePort('p:tcp:80:socket-activated:3')).toMatchObject({ count: 3, socketActivated: true })
  })
})

describe('option values read strictly', () => {
  it('takes group IDs as decimal text or JSON numbers, up to the last valid gid_t', () => {
    expect(parseAppOptions({ supplementaryGid: ['0', '4294967294', 7] }).supplementaryGIDs).toEqual([0, 4294967294, 7])
  })

  it.each([' ', ',', '*', '?', '[', "'", '"', '\\', '\n', '\t'])(
    'refuses a --volume host path holding %j, which .mounts cannot carry',
    (character) => {
      const input = { mount: ['d:/d'], volume: [`d=/srv/a${character}b`] }
      expect(() => parseAppOptions(input)).toThrow(
        /^--volume 'd=\/srv\/a[^]b': the host path holds .*, which rkt's --volume/,
      )
    },
  )

  it('keeps programs inside the profile, and takes an absolute one as given', () => {
    expect(parseAppOptions({ exec: 'bin/../sbin/x' }).exec).toEqual(['bin/../sbin/x'])
    expect(parseAppOptions({ exec: '/usr/bin/env a' }).exec).toEqual(['/usr/bin/env', 'a'])
    expect(() => checkBinary('bin/sh')).not.toThrow()
    expect(() => checkBinary('/bin/../../../usr/bin/env')).toThrow(
      "binary '/bin/../../../usr/bin/env' leads out of the profile: a path with a / is taken inside the profile",
    )
  })
})

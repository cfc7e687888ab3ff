// Command conifer is the command-line client of a Conifer keyserver: it
// registers and updates a user's public keys with keys held on this
// device, looks users' keys up, and checks every answer against a realm
// config pinned at init (see package client for what is verified).
//
// Usage:
//
//	conifer [global flags] <command> [flags] [args]
//
//	init                     create device keys and pin a realm config
//	register USER            register USER with this device's key
//	update USER              change USER's keys, device key or policy, or erase USER
//	lookup USER              print USER's verified keys
//	history USER             print every version of USER's entry, verified
//	monitor USER             watch USER for changes this device did not make
//	checkpoint               fetch, verify and show the newest checkpoint
//
// Global flags (before or after the command):
//
//	--server URL   the keyserver's base URL (default: the one saved by init)
//	--realm FILE   a realm config to use instead of the pinned one
//	--dir DIR      the configuration directory (default ~/.config/conifer)
//
// Every command takes --help. Typical use:
//
//	conifer init --realm realm.json --server https://keys.example.com
//	conifer register alice@example.com --set-key pgp=@alice.asc --registrar-key app.key
//	conifer lookup bob@example.com
//	conifer update alice@example.com --rotate-device-key
//	conifer monitor alice@example.com
//
// Registration needs the realm's authorisation: --registrar-key FILE (an
// app backend's registrar key) or an OpenID Connect ID token whose nonce
// binds the entry. For the latter, run "conifer register USER
// --print-nonce [--set-key ...]" first, obtain a token with that nonce, then
// "conifer register USER --id-token-file FILE".
//
// Exit codes:
//
//	0  success
//	1  usage or local error (bad flags, missing keys or config)
//	2  verification failure: the keyserver's answer was wrong; the evidence
//	   is written under DIR/evidence and its path printed
//	3  server or network error (including a refused update)
//	4  not found: the user is not registered (or was erased)
//
// # Policy expressions
//
// --policy takes a threshold expression over Ed25519 public keys:
//
//	policy    = threshold "(" member *( "," member ) ")"
//	member    = policy / key
//	key       = base64 / "device" / "@" path   ; 32-byte key, this device's key, a public key file
//	threshold = %x31-39 *DIGIT                 ; 1..65535
//
// e.g. "1(device, @recovery.pub)" (this device or the app's recovery key)
// or "2(device, 1(@laptop.pub, @phone.pub))". Output prints keys in base64,
// or "device" for this device's key.
//
// # Key files
//
// One line each: "CONIFER-PRIVATE-KEY " base64(32-byte Ed25519 seed) for
// private keys (mode 0600 required), "CONIFER-PUBLIC-KEY " base64(32-byte
// key) for public keys. A bare base64 seed or 64-byte Ed25519 private key is
// also accepted for --registrar-key and --key.
//
// # Files
//
// The configuration directory (mode 0700; every file 0600, written
// atomically) holds:
//
//	realm.json                   the pinned realm config
//	server                       the default keyserver URL
//	keys/device.key, device.pub  this device's key
//	keys/next.key                the new key of a rotation in progress
//	keys/retired/<key id>.key    keys rotated out
//	state/<id>.note              the newest checkpoint verified (rollback and fork detection)
//	own/<id>.json                the updates this device made (for monitor)
//	drafts/<id>.json             a registration prepared for an ID token
//	evidence/                    evidence of every verification failure
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

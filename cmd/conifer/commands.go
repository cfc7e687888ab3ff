package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/conifer-kt/conifer/client"
	"github.com/conifer-kt/conifer/format"
	"github.com/conifer-kt/conifer/realm"
)

var cmdInit = &command{
	name: "init", args: "", summary: "create device keys and pin a realm config",
	help: `Creates the configuration directory (mode 0700) with a new Ed25519
device key (keys/device.key, mode 0600), pins the realm config given with
--realm (a copy in realm.json; replacing a different pinned realm needs
--force) and saves --server as the default keyserver. Running it again
keeps the existing device key. Prints the device's public key, for
policies on other devices (e.g. 1(device, <this key>)).`,
	setup: func(fs *flag.FlagSet) func(a *app, pos []string) error {
		force := fs.Bool("force", false, "replace a different pinned realm config")
		return func(a *app, pos []string) error {
			if len(pos) != 0 {
				return usageError{"init takes no arguments"}
			}
			st := a.store
			if err := st.mkdir(); err != nil {
				return err
			}
			if fi, err := os.Stat(st.dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
				fmt.Fprintf(a.stderr, "conifer: warning: %s is accessible by other users (mode %v)\n", st.dir, fi.Mode().Perm())
			}
			pinnedPath := st.path("realm.json")
			var cfg *realm.Config
			switch {
			case a.g.realm != "":
				var err error
				if cfg, err = realm.Load(a.g.realm); err != nil {
					return usageError{err.Error()}
				}
				if _, err := client.NewPinned(cfg, cfg.Quorum); err != nil {
					return usageError{err.Error()}
				}
				b, err := cfg.Marshal()
				if err != nil {
					return err
				}
				old, err := os.ReadFile(pinnedPath)
				switch {
				case errors.Is(err, os.ErrNotExist):
				case err != nil:
					return err
				case !bytes.Equal(old, b) && !*force:
					return usageError{fmt.Sprintf("%s pins a different realm config; pass --force to replace it", pinnedPath)}
				}
				if err := st.write(b, "realm.json"); err != nil {
					return err
				}
			default:
				var err error
				if cfg, err = st.realm(""); err != nil {
					return usageError{"init needs --realm FILE (the realm config to pin)"}
				}
			}
			if a.g.server != "" {
				u, err := url.Parse(a.g.server)
				if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
					return usageError{fmt.Sprintf("--server %q is not an http(s) URL", a.g.server)}
				}
				if err := st.write([]byte(a.g.server+"\n"), "server"); err != nil {
					return err
				}
			}
			keyPath := st.path("keys", "device.key")
			if _, err := os.Stat(keyPath); errors.Is(err, os.ErrNotExist) {
				k, err := client.GenerateKey(a.rand)
				if err != nil {
					return err
				}
				if err := st.write(FormatPrivateKey(k), "keys", "device.key"); err != nil {
					return err
				}
				if err := st.write(FormatPublicKey(pubOf(k)), "keys", "device.pub"); err != nil {
					return err
				}
			}
			k, err := st.keyring()
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "configuration  %s\nrealm          %s (quorum %d of %d verifiers)\ndevice key id  %s\ndevice key     %s\n",
				st.dir, cfg.Realm, cfg.Quorum, len(cfg.Verifiers), format.KeyIDOf(pubOf(k.device)), base64.StdEncoding.EncodeToString(pubOf(k.device)))
			return nil
		}
	},
}

// setKey is a --set-key app=base64|@file value.
type setKey struct {
	app string
	key []byte
}

// parseSetKey parses "app=base64" or "app=@file" (the file's bytes).
func parseSetKey(s string) (setKey, error) {
	app, v, ok := strings.Cut(s, "=")
	if !ok || app == "" || v == "" {
		return setKey{}, fmt.Errorf("want app=base64 or app=@file, got %q", s)
	}
	if path, ok := strings.CutPrefix(v, "@"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return setKey{}, err
		}
		return setKey{app, b}, nil
	}
	b, err := base64.StdEncoding.Strict().DecodeString(v)
	if err != nil || base64.StdEncoding.EncodeToString(b) != v {
		return setKey{}, fmt.Errorf("%s: the key is not canonical base64 (use @file for a file)", app)
	}
	return setKey{app, b}, nil
}

// profileFlags are the flags that change a profile.
type profileFlags struct {
	set    []setKey
	remove []string
}

func (p *profileFlags) register(fs *flag.FlagSet, withRemove bool) {
	fs.Func("set-key", "set an application key: `app=base64` or app=@file (repeatable)", func(s string) error {
		k, err := parseSetKey(s)
		if err != nil {
			return err
		}
		p.set = append(p.set, k)
		return nil
	})
	if withRemove {
		fs.Func("remove-key", "remove an application's key (`app`, repeatable)", func(s string) error {
			p.remove = append(p.remove, s)
			return nil
		})
	}
}

// apply returns base with the changes, or nil if there are none.
func (p *profileFlags) apply(base *format.Profile) (*format.Profile, error) {
	if len(p.set) == 0 && len(p.remove) == 0 {
		return nil, nil
	}
	out := &format.Profile{}
	if base != nil {
		for _, k := range base.Keys {
			if err := out.Set(k.App, k.Key); err != nil {
				return nil, err
			}
		}
	}
	for _, app := range p.remove {
		if !out.Remove(app) {
			return nil, usageError{fmt.Sprintf("--remove-key %s: the profile has no %s key", app, app)}
		}
	}
	for _, k := range p.set {
		if err := out.Set(k.app, k.key); err != nil {
			return nil, usageError{fmt.Sprintf("--set-key %s: %v", k.app, err)}
		}
	}
	return out, nil
}

// resolver resolves "device" to dev and "@path" to a public key file.
func resolver(dev ed25519.PublicKey) keyResolver {
	return func(m string) (ed25519.PublicKey, error) {
		if m == "device" {
			return dev, nil
		}
		b, err := os.ReadFile(strings.TrimPrefix(m, "@"))
		if err != nil {
			return nil, err
		}
		return ParsePublicKey(b)
	}
}

var cmdRegister = &command{
	name: "register", args: "USER", summary: "register USER with this device's key",
	help: `Registers USER (who must not be registered yet) with the profile given by
--set-key and the update policy --policy (default "1(device)": this device
alone may change the entry). The registration must be authorised by the
realm: --registrar-key FILE signs it with an app backend's registrar key;
--id-token / --id-token-file send an OpenID Connect ID token whose nonce
binds the entry. For a token, run with --print-nonce first: it saves the
prepared entry and prints the nonce to request the token with; the next
register with the token sends that same entry. Waits until the epoch
holding the registration is co-signed (unless --no-wait) and prints the
verified result.`,
	setup: func(fs *flag.FlagSet) func(a *app, pos []string) error {
		var pf profileFlags
		pf.register(fs, false)
		policy := fs.String("policy", "", "the update `policy` expression (default \"1(device)\")")
		registrarKey := fs.String("registrar-key", "", "sign the registration with the registrar key in `FILE`")
		idToken := fs.String("id-token", "", "an OpenID Connect ID `token` authorising the registration")
		idTokenFile := fs.String("id-token-file", "", "read the ID token from `FILE`")
		printNonce := fs.Bool("print-nonce", false, "prepare the registration, print the nonce an ID token must carry, and stop")
		noWait := fs.Bool("no-wait", false, "return once the update is in the log, without waiting for its epoch")
		asJSON := fs.Bool("json", false, "print the result as JSON")
		return func(a *app, pos []string) error {
			user, err := one(pos, "USER")
			if err != nil {
				return err
			}
			auths := 0
			for _, s := range []string{*registrarKey, *idToken, *idTokenFile} {
				if s != "" {
					auths++
				}
			}
			if *printNonce && auths > 0 {
				return usageError{"--print-nonce prepares a registration; send it later with --id-token or --id-token-file"}
			}
			if !*printNonce && auths != 1 {
				return usageError{"register needs exactly one of --registrar-key, --id-token, --id-token-file (or --print-nonce)"}
			}
			cfg, err := a.realm()
			if err != nil {
				return err
			}
			c, err := a.client(cfg)
			if err != nil {
				return err
			}
			keys, err := a.store.keyring()
			if err != nil {
				return err
			}
			token := *idToken
			if *idTokenFile != "" {
				b, err := os.ReadFile(*idTokenFile)
				if err != nil {
					return err
				}
				token = strings.TrimSpace(string(b))
			}
			cur, err := c.Lookup(a.ctx, user)
			if err != nil {
				return err
			}
			if cur.Present {
				return usageError{fmt.Sprintf("%s is already registered (version %d); use conifer update", user, cur.Version())}
			}
			// With a token, reuse the prepared entry its nonce binds.
			var d *draft
			if token != "" && len(pf.set) == 0 && *policy == "" {
				if d, err = a.store.loadDraft(cfg.Realm, user); err != nil {
					return err
				}
			}
			var (
				pol     *format.Policy
				profile *format.Profile
				rnd     = a.rand
			)
			if d != nil {
				if pol, err = ParsePolicy(d.Policy, nil); err != nil {
					return err
				}
				if profile, err = format.ParseProfile(d.Profile); err != nil {
					return err
				}
				rnd = bytes.NewReader(d.Opening)
			} else {
				expr := *policy
				if expr == "" {
					expr = "1(device)"
				}
				if pol, err = ParsePolicy(expr, resolver(pubOf(keys.device))); err != nil {
					return usageError{err.Error()}
				}
				if profile, err = pf.apply(&format.Profile{}); err != nil {
					return err
				}
				if profile == nil {
					profile = &format.Profile{}
				}
			}
			u, err := client.Prepare(cur, client.Change{Policy: pol, Profile: profile}, rnd)
			if err != nil {
				return err
			}
			if d != nil && u.OIDCNonce() != d.Nonce {
				return fmt.Errorf("the saved registration draft no longer matches its nonce; run --print-nonce again")
			}
			if *printNonce {
				pb := u.EncodedProfile()
				nd := &draft{Realm: cfg.Realm, User: user, Policy: FormatPolicy(&u.Entry.Policy, nil), Profile: pb, Opening: u.Opening[:], Nonce: u.OIDCNonce()}
				if err := a.store.saveDraft(nd); err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, u.OIDCNonce())
				return nil
			}
			switch {
			case *registrarKey != "":
				rk, err := readPrivateKey(*registrarKey)
				if err != nil {
					return usageError{err.Error()}
				}
				u.SignRegistrar(rk)
			default:
				if n, ok := tokenNonce(token); ok && n != u.OIDCNonce() {
					return usageError{fmt.Sprintf("the ID token's nonce %q does not bind this registration (want %q): run conifer register %s --print-nonce first and request the token with that nonce", n, u.OIDCNonce(), user)}
				}
				u.SetIDToken(token)
			}
			u.Sign(keys.all()...)
			res, err := a.submit(c, cfg, user, u, !*noWait, *asJSON, keys)
			if err != nil {
				return err
			}
			if res.Lookup != nil {
				return a.store.removeDraft(cfg.Realm, user)
			}
			return nil
		}
	},
}

// tokenNonce reads the nonce claim of a JWT without verifying it (the
// keyserver verifies the token), to catch a token requested for another
// entry before sending it.
func tokenNonce(tok string) (string, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", false
	}
	var claims struct {
		Nonce string `json:"nonce"`
	}
	if json.Unmarshal(b, &claims) != nil || claims.Nonce == "" {
		return "", false
	}
	return claims.Nonce, true
}

var cmdUpdate = &command{
	name: "update", args: "USER", summary: "change USER's keys, device key or policy, or erase USER",
	help: `Makes the next version of USER's entry from the verified current one:
--set-key / --remove-key change the profile, --policy replaces the update
policy ("device" in it means this device's key, the new one when rotating),
--rotate-device-key replaces this device's key with a new one everywhere in
the policy (both keys sign; the new key is kept in keys/next.key until the
update is verified, so an interrupted rotation can be retried), and
--tombstone erases the user's profile (a later update revives it).
The update is signed with this device's keys and any --key FILE; it must
satisfy the current policy and the new one. Waits until the epoch holding
it is co-signed (unless --no-wait) and prints the verified result.`,
	setup: func(fs *flag.FlagSet) func(a *app, pos []string) error {
		var pf profileFlags
		pf.register(fs, true)
		policy := fs.String("policy", "", "the new update `policy` expression")
		rotate := fs.Bool("rotate-device-key", false, "replace this device's key with a new one")
		tombstone := fs.Bool("tombstone", false, "erase the user's profile")
		var extra []string
		fs.Func("key", "also sign with the private key in `FILE` (repeatable)", func(s string) error {
			extra = append(extra, s)
			return nil
		})
		noWait := fs.Bool("no-wait", false, "return once the update is in the log, without waiting for its epoch")
		asJSON := fs.Bool("json", false, "print the result as JSON")
		return func(a *app, pos []string) error {
			user, err := one(pos, "USER")
			if err != nil {
				return err
			}
			if *tombstone && (len(pf.set) > 0 || len(pf.remove) > 0) {
				return usageError{"--tombstone erases the profile; it cannot be combined with --set-key or --remove-key"}
			}
			cfg, err := a.realm()
			if err != nil {
				return err
			}
			c, err := a.client(cfg)
			if err != nil {
				return err
			}
			keys, err := a.store.keyring()
			if err != nil {
				return err
			}
			for _, f := range extra {
				k, err := readPrivateKey(f)
				if err != nil {
					return usageError{err.Error()}
				}
				keys.extra = append(keys.extra, k)
			}
			cur, err := c.Lookup(a.ctx, user)
			if err != nil {
				return err
			}
			if !cur.Present {
				return notFoundError{fmt.Sprintf("%s is not registered (verified at epoch %d); use conifer register", user, cur.Epoch)}
			}
			if done, err := a.store.settleRotation(keys, &cur.Entry.Policy); err != nil {
				return err
			} else if done {
				fmt.Fprintf(a.stderr, "conifer: finished an earlier device key rotation (device key is now %s)\n", format.KeyIDOf(pubOf(keys.device)))
			}
			ch := client.Change{Tombstone: *tombstone}
			base := cur.Profile
			if cur.Tombstone() {
				base = &format.Profile{}
			}
			if ch.Profile, err = pf.apply(base); err != nil {
				return err
			}
			device := pubOf(keys.device)
			var next ed25519.PrivateKey
			if *rotate {
				if next, err = a.store.startRotation(keys, a.rand); err != nil {
					return err
				}
				device = pubOf(next)
			}
			if *policy != "" {
				if ch.Policy, err = ParsePolicy(*policy, resolver(device)); err != nil {
					return usageError{err.Error()}
				}
			}
			if *rotate {
				base := ch.Policy
				if base == nil {
					base = &cur.Entry.Policy
				}
				if _, ok := base.Key(format.KeyIDOf(pubOf(keys.device))); ok {
					if ch.Policy, err = client.RotateKey(base, pubOf(keys.device), pubOf(next)); err != nil {
						return usageError{err.Error()}
					}
				} else if _, ok := base.Key(format.KeyIDOf(pubOf(next))); !ok {
					return usageError{"--rotate-device-key: this device's key is not in the policy"}
				}
			}
			if ch.Policy == nil && ch.Profile == nil && !ch.Tombstone {
				return usageError{"nothing to update: give --set-key, --remove-key, --policy, --rotate-device-key or --tombstone"}
			}
			u, err := client.Prepare(cur, ch, a.rand)
			if err != nil {
				return usageError{err.Error()}
			}
			u.Sign(keys.all()...)
			res, err := a.submit(c, cfg, user, u, !*noWait, *asJSON, keys)
			if err != nil {
				return err
			}
			if *rotate && res.Lookup != nil {
				if _, err := a.store.settleRotation(keys, &res.Lookup.Entry.Policy); err != nil {
					return err
				}
			}
			return nil
		}
	},
}

// submit checks, records and sends an update, and prints the result.
func (a *app) submit(c *client.Client, cfg *realm.Config, user string, u *client.Update, wait, asJSON bool, keys *keyring) (*client.UpdateResult, error) {
	if err := u.Check(); err != nil {
		return nil, usageError{fmt.Sprintf("this device's keys cannot make this update: %v", err)}
	}
	req, err := u.Request(user, wait)
	if err != nil {
		return nil, err
	}
	// Recorded before sending: an update this device sent is never
	// mistaken by monitor for somebody else's.
	if err := a.store.recordOwn(cfg.Realm, user, u.Entry.Version, u.EntryHash(), a.now()); err != nil {
		return nil, err
	}
	res, err := c.Update(a.ctx, req)
	if err != nil {
		return nil, err
	}
	if res.Lookup == nil {
		if asJSON {
			return res, writeJSON(a.stdout, map[string]any{"user": user, "receipt": res.Receipt})
		}
		fmt.Fprintf(a.stdout, "%s: version %d is in the log (epoch due by %s); run conifer lookup to see it applied\n",
			user, res.Receipt.Version, res.Receipt.EpochDeadline)
		return res, nil
	}
	if res.Lookup.EntryHash == u.EntryHash() {
		if err := a.store.confirmOwn(cfg.Realm, user, u.EntryHash()); err != nil {
			return nil, err
		}
	}
	return res, a.printResult(res.Lookup, keys, asJSON)
}

var cmdLookup = &command{
	name: "lookup", args: "USER", summary: "print USER's verified keys",
	help: `Looks USER up and verifies the answer (signatures, co-signature quorum,
freshness, VRF, tree proof, commitment) and its consistency with every
checkpoint this directory has seen. Prints the keys by application, or
exits 4 if USER is not registered or was erased. --epoch N looks at a past
epoch instead of the newest.`,
	setup: func(fs *flag.FlagSet) func(a *app, pos []string) error {
		asJSON := fs.Bool("json", false, "print the result as JSON")
		epoch := fs.Int64("epoch", -1, "look up at past epoch `N`")
		return func(a *app, pos []string) error {
			user, err := one(pos, "USER")
			if err != nil {
				return err
			}
			cfg, err := a.realm()
			if err != nil {
				return err
			}
			c, err := a.client(cfg)
			if err != nil {
				return err
			}
			var res *client.Result
			if *epoch >= 0 {
				res, err = c.LookupAt(a.ctx, user, uint64(*epoch))
			} else {
				res, err = c.Lookup(a.ctx, user)
			}
			if err != nil {
				return err
			}
			keys, _ := a.store.keyring() // only to name this device's keys
			if err := a.printResult(res, keys, *asJSON); err != nil {
				return err
			}
			switch {
			case !res.Present:
				return notFoundError{fmt.Sprintf("%s is not registered (verified at epoch %d)", user, res.Epoch)}
			case res.Tombstone():
				return notFoundError{fmt.Sprintf("%s was erased (version %d, verified at epoch %d)", user, res.Version(), res.Epoch)}
			}
			return nil
		}
	},
}

// lookupJSON is lookup's --json output.
type lookupJSON struct {
	User           string            `json:"user"`
	Present        bool              `json:"present"`
	Erased         bool              `json:"erased"`
	Version        uint64            `json:"version,omitempty"`
	Epoch          uint64            `json:"epoch"`
	EpochTime      time.Time         `json:"epoch_time"`
	CheckpointSize uint64            `json:"checkpoint_size"`
	Cosigners      []string          `json:"cosigners"`
	Keys           map[string][]byte `json:"keys,omitempty"`
	Policy         string            `json:"policy,omitempty"`
	EntryHash      string            `json:"entry_hash,omitempty"`
}

func (a *app) printResult(res *client.Result, keys *keyring, asJSON bool) error {
	var names map[format.KeyID]string
	if keys != nil {
		names = keys.names()
	}
	var cosigners []string
	for _, c := range res.Checkpoint.Cosigners {
		cosigners = append(cosigners, c.Name)
	}
	if asJSON {
		j := lookupJSON{
			User: res.UserID, Present: res.Present, Erased: res.Tombstone(), Version: res.Version(),
			Epoch: res.Epoch, EpochTime: res.HeadTime.UTC(), CheckpointSize: res.Checkpoint.Size, Cosigners: cosigners,
		}
		if res.Present {
			j.Policy = FormatPolicy(&res.Entry.Policy, nil)
			j.EntryHash = hex.EncodeToString(res.EntryHash[:])
			if res.Profile != nil {
				j.Keys = map[string][]byte{}
				for _, k := range res.Profile.Keys {
					j.Keys[k.App] = k.Key
				}
			}
		}
		return writeJSON(a.stdout, j)
	}
	w := a.stdout
	fmt.Fprintf(w, "%s\n", res.UserID)
	switch {
	case !res.Present:
		fmt.Fprintf(w, "  not registered\n")
	case res.Tombstone():
		fmt.Fprintf(w, "  erased at version %d\n", res.Version())
	default:
		fmt.Fprintf(w, "  version %d\n", res.Version())
	}
	fmt.Fprintf(w, "  epoch   %d (%s), checkpoint of size %d co-signed by %d verifier(s)\n",
		res.Epoch, res.HeadTime.UTC().Format(time.RFC3339), res.Checkpoint.Size, len(cosigners))
	if res.Present {
		fmt.Fprintf(w, "  policy  %s\n", FormatPolicy(&res.Entry.Policy, names))
	}
	if res.Profile != nil {
		for _, k := range res.Profile.Keys {
			fmt.Fprintf(w, "  %-7s %s\n", k.App, base64.StdEncoding.EncodeToString(k.Key))
		}
	}
	return nil
}

func writeJSON(w interface{ Write([]byte) (int, error) }, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

var cmdHistory = &command{
	name: "history", args: "USER", summary: "print every version of USER's entry, verified",
	help: `Fetches every version ever published for USER and verifies the chain:
each leaf record commits to the previous one, versions count up by one,
each entry names the previous one and is signed by the quorums of the old
and the new update policy, and the chain ends in the verified lookup.
Profiles are not part of the history (only their commitments).`,
	setup: func(fs *flag.FlagSet) func(a *app, pos []string) error {
		asJSON := fs.Bool("json", false, "print the result as JSON")
		return func(a *app, pos []string) error {
			user, err := one(pos, "USER")
			if err != nil {
				return err
			}
			cfg, err := a.realm()
			if err != nil {
				return err
			}
			c, err := a.client(cfg)
			if err != nil {
				return err
			}
			h, err := c.History(a.ctx, user)
			if errors.Is(err, client.ErrNotFound) {
				return notFoundError{fmt.Sprintf("%s has no history", user)}
			}
			if err != nil {
				return err
			}
			keys, _ := a.store.keyring()
			var names map[format.KeyID]string
			if keys != nil {
				names = keys.names()
			}
			type versionJSON struct {
				Version   uint64   `json:"version"`
				Epoch     uint64   `json:"epoch"`
				Erased    bool     `json:"erased"`
				Policy    string   `json:"policy"`
				Signers   []string `json:"signers"`
				EntryHash string   `json:"entry_hash"`
			}
			var out []versionJSON
			for _, v := range h.Versions {
				j := versionJSON{Version: v.Entry.Version, Epoch: v.LeafRecord.Epoch, Erased: v.Entry.Tombstone,
					Policy: FormatPolicy(&v.Entry.Policy, names), EntryHash: hex.EncodeToString(v.EntryHash[:])}
				for _, s := range v.Signers {
					if n, ok := names[s]; ok {
						j.Signers = append(j.Signers, n)
					} else {
						j.Signers = append(j.Signers, s.String())
					}
				}
				out = append(out, j)
			}
			if *asJSON {
				return writeJSON(a.stdout, map[string]any{"user": user, "epoch": h.Lookup.Epoch, "versions": out})
			}
			fmt.Fprintf(a.stdout, "%s: %d version(s), verified at epoch %d\n", user, len(out), h.Lookup.Epoch)
			for _, v := range out {
				state := ""
				if v.Erased {
					state = " erased"
				}
				fmt.Fprintf(a.stdout, "  v%-3d epoch %-6d%s policy %s signed by %s\n", v.Version, v.Epoch, state, v.Policy, strings.Join(v.Signers, ", "))
			}
			return nil
		}
	},
}

var cmdMonitor = &command{
	name: "monitor", args: "USER", summary: "watch USER for changes this device did not make",
	help: `Watches USER's verified history (every --interval, default the realm's
maximum epoch interval) and exits with status 2, writing the evidence under
DIR/evidence, as soon as a version appears that this device did not make
(as recorded by its register and update commands), or a version this
device saw applied disappears. Versions up to --known-version are accepted
(e.g. made before this device existed). Any verification failure also
exits 2; network errors are reported and retried. With --once it checks
once and exits (0 if everything is this device's).`,
	setup: func(fs *flag.FlagSet) func(a *app, pos []string) error {
		once := fs.Bool("once", false, "check once and exit")
		interval := fs.Duration("interval", 0, "time between checks (default: the realm's max epoch interval)")
		known := fs.Uint64("known-version", 0, "accept versions up to `N` as known")
		return func(a *app, pos []string) error {
			user, err := one(pos, "USER")
			if err != nil {
				return err
			}
			cfg, err := a.realm()
			if err != nil {
				return err
			}
			c, err := a.client(cfg)
			if err != nil {
				return err
			}
			wait := *interval
			if wait <= 0 {
				wait = cfg.MaxEpochInterval.Duration
			}
			var last uint64
			first := true
			for {
				version, err := a.monitorOnce(c, cfg, user, *known)
				switch {
				case err == nil:
					if first || version != last {
						fmt.Fprintf(a.stdout, "%s: version %d, every version made by this device (%s)\n", user, version, a.now().UTC().Format(time.RFC3339))
					}
					first, last = false, version
				case *once:
					return err
				default:
					var ve *client.Error
					if errors.As(err, &ve) || errors.Is(err, errEvidence) || errors.As(err, new(usageError)) {
						return err
					}
					fmt.Fprintf(a.stderr, "conifer: %v (retrying in %v)\n", err, wait)
				}
				if *once {
					return nil
				}
				select {
				case <-a.ctx.Done():
					return nil
				case <-time.After(wait):
				}
			}
		}
	},
}

// monitorOnce checks USER's history against this device's own updates and
// returns the current version.
func (a *app) monitorOnce(c *client.Client, cfg *realm.Config, user string, known uint64) (uint64, error) {
	own, err := a.store.own(cfg.Realm, user)
	if err != nil {
		return 0, err
	}
	mine := map[string]bool{}
	var confirmed []string
	for _, u := range own.Updates {
		mine[u.EntryHash] = true
		if u.Confirmed {
			confirmed = append(confirmed, fmt.Sprintf("v%d %s", u.Version, u.EntryHash))
		}
	}
	h, err := c.History(a.ctx, user)
	if errors.Is(err, client.ErrNotFound) {
		res, err := c.Lookup(a.ctx, user)
		if err != nil {
			return 0, err
		}
		if res.Present {
			return 0, fmt.Errorf("the keyserver has no history for %s but proves an entry", user)
		}
		if len(confirmed) > 0 {
			return 0, a.evidence(cfg, &client.Evidence{Lookup: res.Proof},
				fmt.Sprintf("%s is absent, but this device saw these versions applied: %s", user, strings.Join(confirmed, ", ")), own)
		}
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var foreign []string
	for _, v := range h.Versions {
		hx := hex.EncodeToString(v.EntryHash[:])
		if !mine[hx] && v.Entry.Version > known {
			foreign = append(foreign, fmt.Sprintf("v%d (epoch %d, entry %s)", v.Entry.Version, v.LeafRecord.Epoch, hx))
		}
		if mine[hx] {
			delete(mine, hx)
		}
	}
	for _, u := range own.Updates {
		if u.Confirmed && u.Version <= h.Lookup.Version() {
			if v := h.Versions[u.Version-1]; hex.EncodeToString(v.EntryHash[:]) != u.EntryHash {
				foreign = append(foreign, fmt.Sprintf("v%d replaced this device's confirmed entry %s", u.Version, u.EntryHash))
			}
		}
	}
	if len(foreign) > 0 {
		return 0, a.evidence(cfg, &client.Evidence{History: h.Response},
			fmt.Sprintf("changes to %s this device did not make: %s", user, strings.Join(foreign, "; ")), own)
	}
	for _, v := range h.Versions {
		for _, u := range own.Updates {
			if !u.Confirmed && u.EntryHash == hex.EncodeToString(v.EntryHash[:]) {
				if err := a.store.confirmOwn(cfg.Realm, user, v.EntryHash); err != nil {
					return 0, err
				}
			}
		}
	}
	return h.Lookup.Version(), nil
}

// evidence writes monitor evidence and returns the error to exit with.
func (a *app) evidence(cfg *realm.Config, ev *client.Evidence, msg string, own *ownRecord) error {
	ob, _ := own.marshal()
	ev.Time, ev.Realm, ev.Check, ev.Error = a.now().UTC(), cfg.Realm, errEvidence.Error(), msg
	ev.Server, _ = a.store.server(a.g.server)
	ev.Note = "this device's own updates:\n" + string(ob)
	b, err := ev.Marshal()
	if err != nil {
		return err
	}
	name := fmt.Sprintf("evidence-%d-unexpected-change.json", a.now().UnixNano())
	if err := a.store.write(b, "evidence", name); err != nil {
		return fmt.Errorf("%w: %s (and couldn't write the evidence: %v)", errEvidence, msg, err)
	}
	return fmt.Errorf("%w: %s; evidence written to %s", errEvidence, msg, a.store.path("evidence", name))
}

var cmdCheckpoint = &command{
	name: "checkpoint", args: "", summary: "fetch, verify and show the newest checkpoint",
	help: `Fetches the keyserver's newest checkpoint of the epoch log, verifies the
keyserver's signature and the verifiers' co-signatures against the pinned
realm, checks it is consistent with every checkpoint this directory has
seen, and shows its size, root, newest epoch time and co-signers.`,
	setup: func(fs *flag.FlagSet) func(a *app, pos []string) error {
		asJSON := fs.Bool("json", false, "print the result as JSON")
		return func(a *app, pos []string) error {
			if len(pos) != 0 {
				return usageError{"checkpoint takes no arguments"}
			}
			cfg, err := a.realm()
			if err != nil {
				return err
			}
			c, err := a.client(cfg)
			if err != nil {
				return err
			}
			cp, err := c.Checkpoint(a.ctx)
			if err != nil {
				return err
			}
			h, err := c.Head(a.ctx, cp.Size-1, cp.Size)
			if err != nil {
				return err
			}
			type cosigner struct {
				Name string    `json:"name"`
				Time time.Time `json:"time"`
			}
			var cos []cosigner
			for _, s := range cp.Cosigners {
				cos = append(cos, cosigner{s.Name, time.Unix(int64(s.Timestamp), 0).UTC()})
			}
			headTime := time.UnixMilli(int64(h.Head.Time)).UTC()
			if *asJSON {
				return writeJSON(a.stdout, map[string]any{
					"realm": cp.Origin, "size": cp.Size, "root": cp.Hash[:], "epoch": h.Head.Epoch,
					"epoch_time": headTime, "quorum": c.Pinned().Quorum(), "verifiers": len(cfg.Verifiers),
					"cosigners": cos, "note": string(cp.Note),
				})
			}
			fmt.Fprintf(a.stdout, "realm      %s\nsize       %d\nroot       %s\nepoch      %d at %s\nco-signed  by %d of %d verifiers (quorum %d)\n",
				cp.Origin, cp.Size, base64.StdEncoding.EncodeToString(cp.Hash[:]), h.Head.Epoch, headTime.Format(time.RFC3339),
				len(cos), len(cfg.Verifiers), c.Pinned().Quorum())
			for _, s := range cos {
				fmt.Fprintf(a.stdout, "  %s at %s\n", s.Name, s.Time.Format(time.RFC3339))
			}
			return nil
		}
	},
}

// Package rmcpp implements the IPMI 2.0 RMCP+ session layer (IPMI 2.0 §13)
// used by hpiagent to talk to shelf managers over LAN.
//
// It has two halves.
//
// The codec, usable by both a client and a server (for example the
// embedded shelf in shelf/sim), does no I/O and keeps no state:
//
//   - RMCP framing: [EncodeRMCP], [DecodeRMCP], ASF presence ping/pong
//     ([EncodePing], [DecodePing], [EncodePong], [DecodePong]).
//   - IPMI 2.0 session packets: [Packet], [EncodePacket], [DecodePacket],
//     [PeekHeader] (read the session ID before choosing keys, as a server
//     must). Packets inside a session are always authenticated (integrity
//     HMAC-SHA1-96 or HMAC-SHA256-128) and encrypted (AES-CBC-128); packets
//     outside a session never are. [SessionKeys] carries K1/K2 and the
//     negotiated algorithms.
//   - Payloads: [OpenSessionRequest], [OpenSessionResponse], [RAKP1],
//     [RAKP2], [RAKP3], [RAKP4], each with Marshal and a Parse function
//     (ParseOpenSessionRequest, ParseRAKP1, ... for the server side;
//     ParseOpenSessionResponse, ParseRAKP2, ParseRAKP4 for the client side).
//   - RAKP authentication for both roles: [Handshake] computes the RAKP2
//     key-exchange auth code, the RAKP3 auth code, the SIK, the RAKP4
//     integrity check value and K1/K2 ([Handshake.Keys]). The server
//     computes RAKP2AuthCode and RAKP4ICV and checks RAKP3 with
//     [Handshake.VerifyRAKP3]; the client does the reverse.
//   - Cipher suites: [LookupSuite] (by ID) and [SuiteFor] (by algorithms)
//     know suites 3 and 17 and refuse every other suite
//     ([ErrSuiteRefused]); suites without integrity or confidentiality are
//     always refused.
//   - [SeqWindow]: the sliding window of accepted session sequence numbers.
//   - Pre-session IPMI messages in the IPMI 1.5 format without
//     authentication ([EncodeV15], [DecodeV15], [IsV20] to tell the formats
//     apart) for Get Channel Authentication Capabilities and Get Channel
//     Cipher Suites, which ipmi_sim answers only in that format.
//
// A server uses: IsV20 (else DecodeV15 for pre-session IPMI 1.5
// messages) → PeekHeader (session ID 0: handshake; else look up the
// session by its BMC session ID) → DecodePacket(keys of that session, or
// nil outside a session) → SeqWindow.Accept on the session sequence number
// → ParseOpenSessionRequest / ParseRAKP1 / ParseRAKP3 / ipmi.ParseFrame.
// It picks the suite with SuiteFor(requested algorithms), fills a
// Handshake (ConsoleSessionID, BMCSessionID, randoms, GUID, RAKP 1 role
// and user name), answers with OpenSessionResponse / RAKP2 (AuthCode:
// Handshake.RAKP2AuthCode(password)) / RAKP4 (ICV: Handshake.RAKP4ICV(SIK))
// after Handshake.VerifyRAKP3, derives keys with Handshake.Keys, and sends
// IPMI responses with EncodePacket(Packet{SessionID: the console's session
// ID, Seq: its own outbound counter starting at 1}, keys, crypto/rand.Reader). Decoders verify everything they can and return errors that
// match, with errors.Is, one of ErrShort, ErrNotRMCP, ErrFormat,
// ErrIntegrity, ErrBadPad, ErrUnexpectedPayload, ErrSuiteRefused,
// ErrAuthCode.
//
// The client half is [Session]: [Dial] negotiates a session (Get Channel
// Authentication Capabilities, Get Channel Cipher Suites, Open Session,
// RAKP 1–4), then [Session.Exchange] implements ipmi.Conn with integrity,
// confidentiality, sequence-window and IPMB checksum checks on every
// response, several requests in flight, retransmission of read-only
// requests, keep-alive, re-establishment after loss, and Send Message
// bridging to IPMB controllers. An rqSeq whose answer may still arrive is
// not reused for a while (see [Session]). The privilege level granted must
// be the one asked for ([ErrPrivilege]). Config, Session and SessionKeys
// print and log without their secrets, whatever the fmt verb.
//
// Not authenticated, by the protocol: the pre-session messages (Get
// Channel Authentication Capabilities, Get Channel Cipher Suites) and the
// handshake messages up to RAKP 2. A forger can therefore make Dial fail
// or choose another suite of the allow-list, never a suite outside it;
// handshake answers naming another console session ID are ignored.
// The BMC's GUID is covered by the RAKP 2 auth code and the RAKP 4 ICV
// but not compared with a known value.
package rmcpp

-- M3UA over TCP for tshark/Wireshark 4.0, which offers no decode-as for it.
-- Usage: tshark -X lua_script:m3ua_tcp.lua -X lua_script1:PORT -r capture.pcap
-- Each TCP segment stream is cut into M3UA messages by the length field of the common header
-- (RFC 4666 §3.1: octets 4..7, the whole message), and each message goes to the built-in dissector.
local args = { ... }
local port = tonumber(args[1] or "2905")
local m3ua = Dissector.get("m3ua")
local proto = Proto("m3ua_tcp", "M3UA over TCP (length-field framing)")

local function message_length(tvb, pinfo, offset)
    return tvb(offset + 4, 4):uint()
end

local function dissect_message(tvb, pinfo, tree)
    return m3ua:call(tvb, pinfo, tree)
end

function proto.dissector(tvb, pinfo, tree)
    dissect_tcp_pdus(tvb, tree, 8, message_length, dissect_message)
    return tvb:len()
end

DissectorTable.get("tcp.port"):add(port, proto)

// CRC-32 (ISO-HDLC polynomial 0xEDB88320, as zlib.crc32), slicing-by-8.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lsc {

uint32_t Crc32(const uint8_t* data, size_t size, uint32_t crc = 0);

}  // namespace lsc

// Factories of the codec decoders, one per codec (registered in format/decoder.cc).
#pragma once

#include <memory>

#include "format/decoder.h"

namespace lsc {

Status CreateDenseDecoder(const Blob& blob, std::unique_ptr<MatrixDecoder>* decoder);
Status CreateCsrDecoder(const Blob& blob, std::unique_ptr<MatrixDecoder>* decoder);
Status CreateRelidxDecoder(const Blob& blob, std::unique_ptr<MatrixDecoder>* decoder);
Status CreateBitmapDecoder(const Blob& blob, std::unique_ptr<MatrixDecoder>* decoder);
Status CreateBsrDecoder(const Blob& blob, std::unique_ptr<MatrixDecoder>* decoder);
Status CreateLscDecoder(const Blob& blob, std::unique_ptr<MatrixDecoder>* decoder);
Status CreateF2fDecoder(const Blob& blob, std::unique_ptr<MatrixDecoder>* decoder);
Status CreateMswuDecoder(const Blob& blob, std::unique_ptr<MatrixDecoder>* decoder);

}  // namespace lsc

#pragma once

#if defined(_WIN32)
#define LSC_EXPORT __declspec(dllexport)
#else
#define LSC_EXPORT __attribute__((visibility("default")))
#endif

#ifndef LSC_ORT_VERSION
#define LSC_ORT_VERSION "0.0.0"
#endif

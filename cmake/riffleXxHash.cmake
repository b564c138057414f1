# xxHash ships only a pkg-config file on Debian: wrap its header in the imported target
# xxHash::xxhash (the name upstream's own CMake package uses). riffle includes it with
# XXH_INLINE_ALL, so nothing is linked.
if(NOT TARGET xxHash::xxhash)
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(RIFFLE_PC_XXHASH QUIET libxxhash)
  endif()
  find_path(RIFFLE_XXHASH_INCLUDE_DIR xxhash.h HINTS ${RIFFLE_PC_XXHASH_INCLUDE_DIRS})
  if(NOT RIFFLE_XXHASH_INCLUDE_DIR)
    message(FATAL_ERROR "xxHash not found: install libxxhash-dev")
  endif()
  add_library(xxHash::xxhash INTERFACE IMPORTED)
  set_target_properties(xxHash::xxhash PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${RIFFLE_XXHASH_INCLUDE_DIR}")
endif()
